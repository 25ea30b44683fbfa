"""Helper images, pinned and versioned in this one place; an Environment may override each."""

from agentctl.model.common import StrictModel
from agentctl.model.pods import Image


class Images(StrictModel):
    model_downloader: Image = "ghcr.io/inferensys/model-downloader:0.4.2"
    """Fetches hf://, s3://, gs:// and oci:// model sources into the cache volume."""
    database_waiter: Image = "docker.io/library/busybox:1.37.0"
    """Waits until a database accepts TCP connections."""
    log_shipper: Image = "cr.fluentbit.io/fluent/fluent-bit:4.0.3"
    otel_collector: Image = "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-contrib:0.128.0"  # noqa: E501
    cache_warmer: Image = "ghcr.io/inferensys/cache-warmer:0.2.1"
