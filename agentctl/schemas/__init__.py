"""Schemas generated from the pydantic models, never hand-kept: the JSON Schemas of agentctl's
files for editors (`jsonschemas`), the Agent CRD for the cluster (`crds`), and a project's
`schemas/` folder kept current (`writing`)."""

from agentctl.schemas.crds import GROUP, VERSION, crd
from agentctl.schemas.jsonschemas import FILES, FOLDER, KINDS, Kind, json_schema, modeline, text
from agentctl.schemas.writing import check, write

__all__ = ["FILES", "FOLDER", "GROUP", "KINDS", "VERSION", "Kind", "check", "crd", "json_schema",
           "modeline", "text", "write"]
