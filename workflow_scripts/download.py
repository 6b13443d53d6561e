"""Download one file, resumable and verified (rules `download_*`)."""

from ecorec.data.download import download_file
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
url, sha256, size = ctx.params.url, ctx.params.sha256, ctx.params.size
ctx.logger.info("downloading %s -> %s (sha256 %s, %s bytes)", url, ctx.output[0], sha256, size)
download_file(url, ctx.output[0], expected_sha256=sha256, expected_size=size, progress=True)
