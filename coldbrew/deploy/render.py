"""File contents written by `coldbrew package`: Dockerfiles, the SAM template, the per-directory README.

The files are Jinja2 templates shipped as package data in ``coldbrew/deploy/templates/`` (the way locust's
``html.py`` renders its report): YAML, Dockerfile and Markdown stay readable as what they are, with their
indentation in the file rather than counted in Python. The scheduled warmer's code is the real module
:mod:`coldbrew.deploy.warmer`, embedded as the warmer function's inline code. Every function here is pure:
a :class:`~coldbrew.deploy.package.Plan` in, text out.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

    from coldbrew.deploy.plan import Plan

BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"
RUNTIME = "python3.12"
HANDLER = "coldbrew.aws.handler"
TASK_ROOT = "/var/task"
# Lambda's limit on a function's unzipped code (zip package plus layers), in bytes.
ZIP_UNZIPPED_LIMIT = 262_144_000
DOCKER_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
STUDY_MEMORY_MB = 4500
# HTTP API stage throttling defaults. The study's load is 100 users each waiting 3-5 s between requests,
# about 25 requests/s, all 100 possibly at once when they start: both fit with room to spare.
THROTTLE_RATE = 50
THROTTLE_BURST = 100
# CloudFormation's limit on a function's inline code (ZipFile), in characters.
INLINE_CODE_LIMIT = 4096
TEMPLATE_DIR = Path(__file__).with_name("templates")
WARMER_SOURCE = Path(__file__).with_name("warmer.py")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug: fail, never write an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, **values: Any) -> str:
    """Render the template ``name`` from ``coldbrew/deploy/templates/``; an undefined value raises."""
    return _environment().get_template(name).render(**values)


def extra_env(plan: Plan) -> dict[str, str]:
    """Environment variables beyond MODEL_SOURCE/MODEL_URI that the function needs for ``plan``."""
    # Unpickling runs code from the file: the serving path refuses it unless explicitly allowed.
    return {"COLDBREW_ALLOW_PICKLE": "1"} if plan.model_format == "pickle" else {}


def _common(plan: Plan) -> dict[str, Any]:
    return {
        "plan": plan,
        "platform": DOCKER_PLATFORMS[plan.arch],
        "base": BASE_IMAGE,
        "task_root": TASK_ROOT,
        "handler": HANDLER,
        "runtime": RUNTIME,
        "extra_env": extra_env(plan),
    }


def dockerfile(plan: Plan) -> str:
    """The Dockerfile of an image setup (image-disk, image-s3); zip-snapstart builds its zip without Docker."""
    return render("Dockerfile.image.j2", limit=ZIP_UNZIPPED_LIMIT, **_common(plan))


def dockerignore() -> str:
    """Keep generated docs, the SAM build dir and the zip output out of the Docker build context."""
    return render("dockerignore.j2")


def warmer_code() -> str:
    """The scheduled warmer's source (:mod:`coldbrew.deploy.warmer`), as embedded in the SAM template."""
    return WARMER_SOURCE.read_text(encoding="utf-8")


def routes(plan: Plan) -> list[dict[str, str]]:
    """The HTTP API's routes for ``plan``: the app's, plus ``POST /_warm`` only when asked for."""
    table = [("Root", "/", "GET"), ("Predict", "/predict", "ANY"), ("OpenApi", "/openapi.json", "GET")]
    if plan.warm_route:
        table.append(("Warm", "/_warm", "POST"))
    return [{"name": n, "path": p, "method": m, "label": f"{m} {p}"} for n, p, m in table]


def sam_template(plan: Plan) -> str:
    """The AWS SAM ``template.yaml`` for ``plan``."""
    return render(
        "template.yaml.j2",
        routes=routes(plan),
        study_memory=STUDY_MEMORY_MB,
        throttle_rate=THROTTLE_RATE,
        throttle_burst=THROTTLE_BURST,
        warmer_code=warmer_code(),
        **_common(plan),
    )


def _readme_phrases(plan: Plan) -> dict[str, str]:
    """The README's words that depend on ``plan``: where the model is, the command's flags, SAM's overrides."""
    where = "zip" if plan.setup == "zip-snapstart" else "image"
    inside = f"The model `{plan.model_name}` is inside the {where}."
    return {
        "what": inside if plan.model_in_artifact else f"The model is read from `{plan.s3_uri}` at start-up.",
        "flags": (" --warm-route" if plan.warm_route else "") + (f" --auth {plan.auth}" if plan.auth != "none" else ""),
        "s3_overrides": f" ModelBucket={plan.s3_bucket} ModelKey={plan.s3_key}" if plan.model_source == "S3" else "",
    }


def readme(
    plan: Plan, *, requirements: list[str], estimate: str, checks: list[tuple[str, str, str]] | None = None
) -> str:
    """The README.md for ``plan``: exact build, push and deploy commands, and who can reach which door.

    ``checks`` (zip-snapstart: name, status, detail) are the checks ``coldbrew package`` ran on the built zip.
    """
    from coldbrew.runtimes.aws_lambda import MAX_HTTP_HOLD_MS

    return render(
        "README.zip.md.j2" if plan.setup == "zip-snapstart" else "README.image.md.j2",
        requirements=requirements,
        estimate=estimate,
        http_hold_cap=MAX_HTTP_HOLD_MS,
        checks=checks or [],
        **_readme_phrases(plan),
        **_common(plan),
    )
