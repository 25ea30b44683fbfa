"""Change sets as text, as a versioned document (JSON or YAML) and as Markdown for a pull request
comment. Pure string building: the console prints what these return.

The document (`kind: DiffReport`, `apiVersion: agentctl.inferensys.com/v1alpha1`) is a contract:
fields are only ever added. Per environment: `name`, `namespace`, `source`, `summary` (a count
per outcome) and `objects`, one entry per object with `apiVersion`, `kind`, `namespace`, `name`,
`outcome`, `paths` (JSON Pointers; `""` is the whole object), `managers` (path → the other
field managers owning it) and `reason`.

Everything here works on masked changes (diffs.compare masks): no secret value reaches it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

from agentctl.diffs import Change, EnvChanges, Outcome

API_VERSION = "agentctl.inferensys.com/v1alpha1"
COMMENT_LIMIT = 65_536
"""Characters GitHub accepts in one comment."""
MARKER = "<!-- agentctl-diff -->"
"""First line of the Markdown report: how a CI job finds its previous comment to update."""

_COLOURS = {Outcome.CREATED: "32", Outcome.CONFIGURED: "33", Outcome.DELETED: "31",
            Outcome.SKIPPED: "36", Outcome.FAILED: "1;31", Outcome.UNCHANGED: "2"}
_SUMMARY_WORDS = [(Outcome.CONFIGURED, "configured"), (Outcome.CREATED, "created"),
                  (Outcome.DELETED, "to prune"), (Outcome.SKIPPED, "skipped"),
                  (Outcome.FAILED, "failed"), (Outcome.UNCHANGED, "unchanged")]


def summary(env: EnvChanges) -> str:
    """`3 configured, 1 created, 2 to prune, 40 unchanged` (outcomes with no object left out)."""
    counts = env.summary
    parts = [f"{counts[o.value]} {word}" for o, word in _SUMMARY_WORDS if counts[o.value]]
    return ", ".join(parts) or "no objects"


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _diff_lines(diff: str, color: bool) -> str:
    if not color:
        return diff
    out = []
    for line in diff.splitlines(keepends=True):
        if line.startswith(("+++", "---")):
            out.append(_paint(line.rstrip("\n"), "1", True) + "\n")
        elif line.startswith("+"):
            out.append(_paint(line.rstrip("\n"), "32", True) + "\n")
        elif line.startswith("-"):
            out.append(_paint(line.rstrip("\n"), "31", True) + "\n")
        elif line.startswith("@@"):
            out.append(_paint(line.rstrip("\n"), "36", True) + "\n")
        else:
            out.append(line)
    return "".join(out)


def _headline(change: Change) -> str:
    word = "to prune" if change.outcome == Outcome.DELETED else change.outcome.value
    line = f"{word} {change.ref}"
    if change.reason:
        line += f": {change.reason}"
    return line


def _path_lines(change: Change) -> list[str]:
    out = []
    for path in change.paths:
        if not path:
            continue
        managers = change.managers.get(path)
        out.append(f"  {path}" + (f"  (changed by {', '.join(managers)})" if managers else ""))
    return out


def text(envs: Iterable[EnvChanges], color: bool = False) -> str:
    """Per environment: each object that changes, skips or fails (with its paths and a unified
    diff), then the summary line. Unchanged objects are only counted."""
    out: list[str] = []
    for env in envs:
        out.append(_paint(f"# {env.env} (namespace {env.namespace}, {env.source})", "1", color))
        for change in env.changes:
            if change.outcome == Outcome.UNCHANGED:
                continue
            out.append(_paint(_headline(change), _COLOURS[change.outcome], color))
            out += _path_lines(change)
            if change.outcome in (Outcome.CREATED, Outcome.CONFIGURED, Outcome.FAILED):
                diff = change.unified()
                if diff:
                    out.append(_diff_lines(diff, color).rstrip("\n"))
        out.append(f"{env.env}: {summary(env)}")
    return "\n".join(out) + "\n"


def document(envs: Iterable[EnvChanges]) -> dict[str, Any]:
    """The versioned report document (-o json, -o yaml)."""
    return {"apiVersion": API_VERSION, "kind": "DiffReport", "environments": [
        {"name": env.env, "namespace": env.namespace, "source": env.source,
         "summary": env.summary,
         "objects": [{"apiVersion": c.api_version, "kind": c.ref.kind,
                      "namespace": c.ref.namespace, "name": c.ref.name,
                      "outcome": c.outcome.value, "paths": c.paths, "managers": c.managers,
                      "reason": c.reason} for c in env.changes]}
        for env in envs]}


def _fence(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _object_section(change: Change) -> str:
    paths = [p for p in change.paths if p]
    title = (f"<b>{_headline_word(change)}</b> <code>{html.escape(str(change.ref))}</code>"
             + (f" ({len(paths)} path{'s' if len(paths) != 1 else ''})" if paths else ""))
    parts = [f"<details><summary>{title}</summary>", ""]
    if change.reason:
        parts += [html.escape(change.reason), ""]
    parts += [f"- `{p}`" + (f" (changed by {', '.join(change.managers[p])})"
                            if change.managers.get(p) else "") for p in paths]
    diff = change.unified()
    if diff:
        fence = _fence(diff)
        parts += ["", f"{fence}diff", diff.rstrip("\n"), fence]
    parts += ["", "</details>", ""]
    return "\n".join(parts)


def _headline_word(change: Change) -> str:
    return "removed" if change.outcome == Outcome.DELETED else change.outcome.value


def markdown(envs: Iterable[EnvChanges], title: str = "agentctl diff",
             limit: int = COMMENT_LIMIT) -> str:
    """A pull request comment: a summary table per environment, then one collapsible section
    per object that changes; cut below `limit` characters with a note saying how many
    objects were left out."""
    envs = list(envs)
    head = [MARKER, f"## {title}", "",
            "| environment | source | created | configured | removed | skipped | failed "
            "| unchanged |", "|---|---|---|---|---|---|---|---|"]
    for env in envs:
        s = env.summary
        head.append(f"| {env.env} | {html.escape(env.source)} | {s['created']} "
                    f"| {s['configured']} | {s['deleted']} | {s['skipped']} | {s['failed']} "
                    f"| {s['unchanged']} |")
    head.append("")
    if not any(c.outcome != Outcome.UNCHANGED for env in envs for c in env.changes):
        head.append("No changes.")
    sections: list[tuple[str, str]] = []
    for env in envs:
        shown = [c for c in env.changes if c.outcome != Outcome.UNCHANGED]
        if shown:
            sections.append((f"### {env.env}\n", ""))
            sections += [("", _object_section(c)) for c in shown]
    out = "\n".join(head) + "\n"
    reserve = 400  # room for the note
    left = sum(1 for _, body in sections if body)
    for header, body in sections:
        piece = header + (body + "\n" if body else "")
        if len(out) + len(piece) > limit - reserve:
            out += (f"\n_{left} more object{'s' if left != 1 else ''} not shown: the comment "
                    f"is limited to {limit:,} characters. Run the same `agentctl diff` "
                    "locally for the whole report._\n")
            break
        out += piece
        left -= 1 if body else 0
    return out
