"""The simulated cluster behind `agentctl sandbox` and the cluster tests.

- `agentctl.sandbox.building`: builds (or reuses) the pinned control-plane binaries, kwok and the
  dev tools from their Go modules into a versioned cache; `binary(name)` locates one.
- `agentctl.sandbox.clusters`: starts and stops a kwok cluster (`--runtime binary`) on 127.0.0.1
  with fake CPU, memory and GPU nodes, volume stages and a chaos stage.

Neither module prints: progress goes through a callback that the caller passes in.
"""
