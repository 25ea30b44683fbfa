"""`agentctl validate` flags credential-looking literals beyond env values: model params,
command and args items, and credentials in the userinfo of a URL. One warning per literal, at
its field, never repeating the value; `--strict` makes them errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentctl.cli import app

AGENT = "agents/chat-assistant.yaml"
IMAGE = "    image: ghcr.io/inferensys/chat-agent:1.2.0\n"
PARAMS = "    params: {temperature: 0.2}\n"
TOOL_URL = "      url: http://mcp-docs.tools.svc:8080/mcp\n"
SECRETS = {
    "key": "hunter2-not-a-real-key",
    "sk": "sk-live-THISISNOTAREALKEY1234567890",
    "ghp": "ghp_THISISNOTAREALTOKEN12345678",
}

# (what to replace, its replacement, the field warned about, text on the warned line)
CASES = {
    "param_named_like_a_credential": (
        PARAMS, f'    params: {{temperature: 0.2, api_key: "{SECRETS["key"]}"}}\n',
        "spec.model.params.api_key", "api_key"),
    "param_value_like_a_credential": (
        PARAMS, f'    params: {{temperature: 0.2, extra: {{header: "{SECRETS["sk"]}"}}}}\n',
        "spec.model.params.extra.header", "header"),
    "args_flag_with_equals": (
        IMAGE, IMAGE + f'    args: [serve, "--api-key={SECRETS["sk"]}"]\n',
        "spec.runtime.args[1]", "--api-key"),
    "args_flag_then_value": (
        IMAGE, IMAGE + f'    args: [serve, --token, "{SECRETS["key"]}"]\n',
        "spec.runtime.args[2]", SECRETS["key"]),
    "command_item_like_a_credential": (
        IMAGE, IMAGE + f'    command: [agent, "{SECRETS["ghp"]}"]\n',
        "spec.runtime.command[1]", SECRETS["ghp"]),
    "shell_line_with_password_flag": (
        IMAGE, IMAGE + f'    command: [sh, -c, "exec agent --password {SECRETS["key"]}"]\n',
        "spec.runtime.command[2]", "exec agent"),
    "tool_url_userinfo": (
        TOOL_URL, f"      url: http://bot:{SECRETS['key']}@mcp-docs.tools.svc:8080/mcp\n",
        "spec.tools[0].url", "url:"),
    "model_endpoint_userinfo": (
        PARAMS, PARAMS + f"    endpoint: https://svc:{SECRETS['key']}@llm.example.com/v1\n",
        "spec.model.endpoint", "endpoint:"),
    "model_source_uri_userinfo": (
        PARAMS, PARAMS + f"    source: {{uri: 's3://AKIAEXAMPLE:{SECRETS['key']}@models/m', "
        "cache: {size: 20Gi}}\n",
        "spec.model.source.uri", "uri:"),
    "tracing_endpoint_userinfo": (
        "  lifecycle:\n", "  observability:\n    tracing: {mode: env, endpoint: "
        f"'http://otel:{SECRETS['key']}@collector.observability.svc:4317'}}\n  lifecycle:\n",
        "spec.observability.tracing.endpoint", "endpoint:"),
}


def _write_case(example: Path, case: str) -> tuple[str, int, int]:
    """Apply one case to the example agent; return the field and the 1-based line and column
    of the key or item the warning must point at."""
    old, new, field, anchor = CASES[case]
    agent = example / AGENT
    text = agent.read_text()
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    agent.write_text(text)
    start = text.index(new)
    line_start = text.rindex("\n", 0, start) + 1
    at = text.index(anchor, start)
    if anchor in SECRETS.values() or anchor in ("--api-key", "exec agent"):
        at = text.rindex('"', 0, at) if text[at - 1] == '"' else at  # a quoted flow item
    line = text.count("\n", 0, at) + 1
    col = at - (text.rindex("\n", 0, at) + 1) + 1
    assert line_start <= at
    return field, line, col


def _credential_lines(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if AGENT in line and ("credential" in line)]


@pytest.mark.parametrize("case", list(CASES))
def test_credential_literal_outside_env_values_was_not_flagged(
        runner: CliRunner, example: Path, case: str) -> None:
    field, line, col = _write_case(example, case)
    loose = runner.invoke(app, ["-C", str(example), "validate"])
    assert loose.exit_code == 0, loose.output
    warned = _credential_lines(loose.output)
    assert len(warned) == 1, loose.output
    assert f"{AGENT}:{line}:{col}: {field}: " in warned[0], (warned, line, col)
    for secret in SECRETS.values():
        assert secret not in loose.output


def test_strict_validate_fails_on_a_credential_literal_in_args(
        runner: CliRunner, example: Path) -> None:
    field, line, col = _write_case(example, "args_flag_with_equals")
    strict = runner.invoke(app, ["-C", str(example), "validate", "--strict"])
    assert strict.exit_code == 2, strict.output
    assert isinstance(strict.exception, SystemExit)
    assert f"{AGENT}:{line}:{col}: {field}: " in strict.output
    assert SECRETS["sk"] not in strict.output


def test_strict_validate_fails_on_a_url_with_a_password(
        runner: CliRunner, example: Path) -> None:
    field, line, col = _write_case(example, "tool_url_userinfo")
    strict = runner.invoke(app, ["-C", str(example), "validate", "--strict"])
    assert strict.exit_code == 2, strict.output
    assert isinstance(strict.exception, SystemExit)
    assert f"{AGENT}:{line}:{col}: {field}: " in strict.output
    assert SECRETS["key"] not in strict.output


@pytest.mark.parametrize(("old", "new"), [
    (IMAGE, IMAGE + '    args: ["--api-key=$(OPENAI_API_KEY)", --token, "${TOKEN}"]\n'),
    (IMAGE, IMAGE + "    args: [--max-tokens=512, --token-file=/var/run/token, --tokenizer=bpe]\n"),
    (PARAMS, "    params: {temperature: 0.2, max_tokens: 512, tokenizer: bpe, secretName: k}\n"),
    (TOOL_URL, "      url: http://bot@mcp-docs.tools.svc:8080/mcp\n"),
], ids=["env-references", "token-counts-and-files", "params-about-credentials", "user-only-url"])
def test_references_token_counts_and_file_paths_are_not_flagged_as_credentials(
        runner: CliRunner, example: Path, old: str, new: str) -> None:
    """`$(VAR)` is expanded from a Secret-backed env, `max_tokens` counts tokens, a token
    file or a bare user name in a URL holds no credential."""
    agent = example / AGENT
    agent.write_text(agent.read_text().replace(old, new))
    result = runner.invoke(app, ["-C", str(example), "validate"])
    assert result.exit_code == 0, result.output
    assert _credential_lines(result.output) == []
