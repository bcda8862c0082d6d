#!/usr/bin/env bash
# The GPU check: Critic-RM training through the FSDP recipe (2 processes when 2 GPUs exist),
# the sharded save, reload and head scores on the GPU, and the vLLM judge where vLLM is installed.
# Prints one JSON line (scripts/gpu_check.py). No network; at most 8 minutes.
#
# Prepare in the checkout (the GPU machine has torch, transformers and accelerate, not our small
# pure-Python dependencies, the tokenizer or the data; these travel as ignored folders):
#   bash scripts/gpu_check.sh --prepare
# Then on the GPU machine, from the checkout's root:
#   bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    for folder in /.whl/ /.tok/ /.gpu/; do
        grep -qxF "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >> .git/info/exclude
    done
    rm -rf .whl .tok .gpu && mkdir -p .whl .tok .gpu
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection 'typing-extensions>=4.16' \
        typer rich shellingham annotated-doc markdown-it-py mdurl pygments pyyaml httpx httpcore h11 anyio idna certifi sniffio
    checkpoint=$(.venv/bin/cerm embedded)
    cp "$checkpoint"/{config.json,tokenizer.json,tokenizer_config.json,generation_config.json} .tok/
    cp "$checkpoint"/chat_template.jinja .tok/ 2>/dev/null || true
    cp -r ../shared/data/llmbar .gpu/llmbar
    du -sh .whl .tok .gpu
    exit 0
fi

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    site=${TMPDIR:-/tmp}/cerm-gpu-site
    # Wheels for another Python than this one's do not install: then the installed packages must do.
    python3 -m pip install -q --no-index --no-deps --target "$site" .whl/*.whl \
        || echo "gpu_check: the carried wheels do not install here; using the installed packages" >&2
    export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
exec timeout 480 python3 scripts/gpu_check.py "$@"
