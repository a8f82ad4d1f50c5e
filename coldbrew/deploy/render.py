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
# How long a browser may cache the HTTP API's answer to a CORS preflight.
CORS_MAX_AGE_S = 600
# CloudFormation's limit on a function's inline code (ZipFile), in characters.
INLINE_CODE_LIMIT = 4096
TEMPLATE_DIR = Path(__file__).with_name("templates")
WARMER_SOURCE = Path(__file__).with_name("warmer.py")


def yaml_scalar(value: str | bool | int | float) -> str:
    """``value`` as one YAML flow scalar written by PyYAML's emitter: strings double-quoted with every special
    character escaped (a ``#``, ``: ``, quote or line break cannot end or extend the value), on one line."""
    import yaml

    if isinstance(value, str):
        text = yaml.safe_dump(value, default_style='"', allow_unicode=True, width=2**31 - 1)
    elif isinstance(value, (bool, int, float)):
        text = yaml.safe_dump(value)
    else:
        raise TypeError(f"not a YAML scalar: {type(value).__name__}")
    return text.removesuffix("...\n").strip()


def json_value(value: object) -> str:
    """``value`` as JSON (the exec form of Dockerfile COPY/CMD): strings double-quoted, non-ASCII kept as is."""
    import json

    return json.dumps(value, ensure_ascii=False)


def docker_env_value(value: str) -> str:
    r"""A Dockerfile ``ENV`` value (ENV has no JSON form): single-quoted, a quote inside written ``'''``.

    Between single quotes Docker's word parser (and dockerfile-parse) takes every character as is: no variable
    expansion, no escapes, so ``$``, ``\``, ``"``, ``#`` and spaces stay part of the value. Double quotes would not
    do: Docker reads ``\$`` and ``\`` inside them, dockerfile-parse does not. Values never hold control
    characters (refused before rendering).
    """
    return "'" + value.replace("'", "'\\''") + "'"


def shell_word(value: object) -> str:
    """``value`` quoted as one POSIX shell word (the README's commands)."""
    import shlex

    return shlex.quote(str(value))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug: fail, never write an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Every value interpolated into a generated file goes through the emitter of that file's language.
    env.filters.update(yaml=yaml_scalar, json=json_value, dockerenv=docker_env_value, sh=shell_word)
    return env


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
    return render("Dockerfile.image.j2", limit=ZIP_UNZIPPED_LIMIT, model_dir=f"{TASK_ROOT}/model", **_common(plan))


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
    from coldbrew.runtimes.aws_lambda import DEFAULT_HOLD_MS

    table = routes(plan)
    description = (
        f"coldbrew model endpoint (setup {plan.setup}, model {plan.model_name}), generated by `coldbrew package`. "
        f"HTTP API routes {', '.join(r['label'] for r in table)} go to one Lambda function "
        f"({'AWS_IAM-signed requests only' if plan.auth == 'iam' else 'no authorization'}, throttled per stage)."
    )
    headers = ["content-type"]
    if plan.auth == "iam":  # a signed browser request carries SigV4's headers
        headers += ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]
    return render(
        "template.yaml.j2",
        description=description,
        cors_methods=["GET", "POST", "OPTIONS"],
        cors_headers=headers,
        cors_expose=["x-coldbrew-env", "x-coldbrew-cold"],
        cors_max_age=CORS_MAX_AGE_S,
        routes=table,
        warm_hold_default=DEFAULT_HOLD_MS,
        study_memory=STUDY_MEMORY_MB,
        throttle_rate=THROTTLE_RATE,
        throttle_burst=THROTTLE_BURST,
        warmer_code=warmer_code(),
        **_common(plan),
    )


def example_body(plan: Plan) -> tuple[str, str]:
    """The README's example ``POST /predict`` body (JSON) and where it comes from.

    Built by :func:`coldbrew.app.contract.example_request` from the model's own contract (its ``.brew`` header's
    feature names) when the model is a local ``.brew`` file. A pickle is never unpickled to write a README, and a
    model only on S3 is not read: then the body names the model's features as ``FEATURE`` for the reader to fill.
    """
    if plan.model_path is not None and plan.model_format == "brew":
        from coldbrew.app.contract import contract_of, example_request
        from coldbrew.engine import load_predictor

        body = example_request(contract_of(load_predictor(plan.model_path)))
        return json_value(body), "every feature of the model, each 0 (a valid value for any of them)"
    return json_value(
        {"FEATURE": 0}
    ), "one field per feature of the model, by name (`coldbrew inspect MODEL` lists them)"


def _readme_phrases(plan: Plan) -> dict[str, str]:
    """The README's words that depend on ``plan``: where the model is, the command's flags, SAM's overrides."""
    where = "zip" if plan.setup == "zip-snapstart" else "image"
    inside = f"The model `{plan.model_name}` is inside the {where}."
    flags = (" --warm-route" if plan.warm_route else "") + (f" --auth {plan.auth}" if plan.auth != "none" else "")
    flags += "".join(f" --cors {shell_word(origin)}" for origin in plan.cors)
    overrides = f"ModelBucket={plan.s3_bucket} ModelKey={plan.s3_key}" if plan.model_source == "S3" else ""
    example, example_note = example_body(plan)
    return {
        "what": inside if plan.model_in_artifact else f"The model is read from `{plan.s3_uri}` at start-up.",
        "flags": flags,
        "s3_overrides": f" {shell_word(overrides)}" if overrides else "",
        "example": example,
        "example_note": example_note,
        "model_arg": shell_word(plan.model_arg),
    }


def readme(
    plan: Plan,
    *,
    requirements: list[str],
    estimate: str,
    checks: list[tuple[str, str, str]] | None = None,
    native: list[str] | tuple[str, ...] = (),
) -> str:
    """The README.md for ``plan``: exact build, push and deploy commands, and who can reach which door.

    ``checks`` (zip-snapstart: name, status, detail) are the checks ``coldbrew package`` ran on the built zip;
    ``native`` names the distributions with compiled code vendored for the target (numpy for a softmax model).
    """
    from coldbrew.runtimes.aws_lambda import MAX_HTTP_HOLD_MS

    return render(
        "README.zip.md.j2" if plan.setup == "zip-snapstart" else "README.image.md.j2",
        requirements=requirements,
        estimate=estimate,
        http_hold_cap=MAX_HTTP_HOLD_MS,
        checks=checks or [],
        native=list(native),
        **_readme_phrases(plan),
        **_common(plan),
    )
