"""The offline half: project files → validated models → merged agents → rendered, finished
manifests (`pipeline.render`), then written, checked or validated. Nothing here talks to a
cluster; `pipeline` is the one module that chains the stages."""
