"""`agentctl validate`: render checks plus the Kubernetes 1.37 schemas offline; warnings, and
`--strict` turning them into errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from agentctl.cli import app
from tests.conftest import REPO


def test_example_fleet_is_valid(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "validate"])
    assert result.exit_code == 0, result.output
    assert "dev, prod, staging" in result.output
    # dev declares no External Secrets Operator, and dev and staging no Cilium (they fall back
    # to public HTTPS for ticket-triage's model provider): warnings, and --strict fails.
    assert "ExternalSecret needs capability" in result.output
    strict = runner.invoke(app, ["-C", str(REPO), "validate", "--strict"])
    assert strict.exit_code == 2
    assert ("agents/research-memory.yaml:40:9: spec.secrets.external[0].name: ExternalSecret "
            "needs capability external-secrets.io/v1/ExternalSecret in environment dev"
            ) in strict.output
    for env in ("dev", "staging"):
        assert ("agents/ticket-triage.yaml:14:5: spec.model.provider: egress to "
                "api.anthropic.com cannot be pinned to the domain without capability "
                f"cilium.io/v2/CiliumNetworkPolicy in environment {env}") in strict.output
    assert strict.output.count("\n") == 3  # those are the only problems
    assert runner.invoke(app, ["-C", str(REPO), "validate", "-e", "prod", "--strict"]
                         ).exit_code == 0


def test_invalid_object_is_reported_by_kind_namespace_name(
        runner: CliRunner, example: Path, write: Callable[[Path, str], Path]) -> None:
    write(example / "blueprints" / "broken" / "blueprint.yaml",
          "name: broken\ndescription: x\nhandles: [runtime, model, observability, resources]\n")
    write(example / "blueprints" / "broken" / "svc.yaml.j2", (
        "apiVersion: v1\nkind: Service\nmetadata: {name: {{ agent.metadata.name }}}\n"
        "spec:\n  ports: [{port: {{ 'eighty' }}}]\n  bogusField: 1\n"))
    write(example / "agents" / "chat-assistant.yaml", (
        "apiVersion: agent.inferensys.com/v1alpha1\nkind: Agent\n"
        "metadata: {name: chat-assistant}\n"
        "spec:\n  blueprint: broken\n  runtime: {image: x/y:1}\n  model: {id: m}\n"))
    result = runner.invoke(app, ["-C", str(example), "validate", "-e", "dev"])
    assert result.exit_code == 2, result.output
    assert "Service/agents-dev/chat-assistant: spec.ports[0].port" in result.output
    assert "Service/agents-dev/chat-assistant: spec" in result.output
    assert "bogusField" in result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only


def test_crd_kinds_are_skipped_not_passed(runner: CliRunner, example: Path,
                                          write: Callable[[Path, str], Path]) -> None:
    write(example / "blueprints" / "agent" / "blueprint.yaml",
          (REPO / "blueprints" / "agent" / "blueprint.yaml").read_text())
    for template in (REPO / "blueprints" / "agent").iterdir():
        write(example / "blueprints" / "agent" / template.name, template.read_text())
    write(example / "blueprints" / "agent" / "monitor.yaml.j2", (
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"
        "metadata: {name: {{ agent.metadata.name }}}\nspec: {endpoints: [{port: http}]}\n"))
    result = runner.invoke(app, ["-C", str(example), "validate", "-e", "dev"])
    assert result.exit_code == 0, result.output
    assert "skipped without a schema: monitoring.coreos.com/v1/ServiceMonitor" in result.output


def test_capability_fallback_warns_and_strict_fails(runner: CliRunner, example: Path) -> None:
    env = example / "environments" / "dev.yaml"
    env.write_text(env.read_text().replace("metrics: {monitor: annotations}",
                                           "metrics: {monitor: serviceMonitor}"))
    loose = runner.invoke(app, ["-C", str(example), "validate", "-e", "dev"])
    assert loose.exit_code == 0, loose.output
    assert "warning" in loose.output
    assert "monitoring.coreos.com/v1/ServiceMonitor" in loose.output
    strict = runner.invoke(app, ["-C", str(example), "validate", "-e", "dev", "--strict"])
    assert strict.exit_code == 2, strict.output
    assert "environments/dev.yaml:" in strict.output
    assert "spec.observability.metrics.monitor" in strict.output


def test_credential_looking_literal_is_a_warning_that_never_shows_the_value(
        runner: CliRunner, example: Path) -> None:
    agent = example / "agents" / "chat-assistant.yaml"
    secret = "sk-live-THISISNOTAREALKEY1234567890"
    agent.write_text(agent.read_text().replace(
        '- {name: MAX_TURNS, value: "20"}', f'- {{name: OPENAI_API_KEY, value: "{secret}"}}'))
    loose = runner.invoke(app, ["-C", str(example), "validate"])
    assert loose.exit_code == 0, loose.output
    assert "OPENAI_API_KEY has a literal value that looks like a credential" in loose.output
    strict = runner.invoke(app, ["-C", str(example), "validate", "--strict"])
    assert strict.exit_code == 2
    assert "agents/chat-assistant.yaml:" in strict.output
    assert "spec.runtime.env[0].value" in strict.output
    assert secret not in loose.output + strict.output
