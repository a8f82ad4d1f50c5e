"""`coldbrew package`: the three setups are generated and every artifact passes static checks.

No Docker engine or AWS account here, so each artifact is checked the way the real tools would read it:
cfn-lint and samtranslator for template.yaml, dockerfile-parse for the Dockerfile (and the build context
holds every file it copies), requirements.txt for what serving pulls in; the zip setup's function.zip is built
here (its smoke test has its own tests, tests/deploy/test_zip_smoke.py; the fixture skips it).
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

import pytest

from coldbrew.deploy import render as tpl
from coldbrew.deploy.package import has_native_sources, package
from coldbrew.errors import ColdbrewError

S3_URI = "s3://coldbrew-models/prod/tiny.brew"
LAMBDA_ZIP_LIMIT = 262_144_000
HEAVY = ("scikit-learn", "sklearn", "pandas", "scipy")


@pytest.fixture(scope="module")
def packages(tmp_path_factory, tiny_model, tiny_brew):
    """One output directory per (setup, model format) combination worth checking."""
    root = tmp_path_factory.mktemp("packages")
    cases = {
        "image-disk": (str(tiny_brew), "image-disk", {}),
        "image-disk-pickle": (str(tiny_model), "image-disk", {}),
        "image-s3": (str(tiny_brew), "image-s3", {"s3_uri": S3_URI}),
        "image-s3-uri": (S3_URI, "image-s3", {}),
        "zip-snapstart": (str(tiny_brew), "zip-snapstart", {}),
        "zip-snapstart-s3": (str(tiny_brew), "zip-snapstart", {"s3_uri": S3_URI}),
        # The doors a user can open: the HTTP warm route (secret-protected) and IAM authorization.
        "image-disk-warm-route-iam": (str(tiny_brew), "image-disk", {"warm_route": True, "auth": "iam"}),
        "zip-snapstart-warm-route": (str(tiny_brew), "zip-snapstart", {"warm_route": True}),
        "image-s3-iam": (str(tiny_brew), "image-s3", {"s3_uri": S3_URI, "auth": "iam"}),
    }
    pytest.importorskip("ziglang", reason="the zip setup cross-builds the kernel with ziglang (deploy extra)")
    return {
        name: package(uri, setup, root / name, **kw, **({"smoke": False} if setup == "zip-snapstart" else {}))
        for name, (uri, setup, kw) in cases.items()
    }


def _images(packages) -> dict:
    return {name: result for name, result in packages.items() if result.plan.setup != "zip-snapstart"}


def _parse_template(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


def _transform(template: dict, parameters: dict) -> dict:
    """Run the SAM transform as CloudFormation would (no IAM look-ups: the templates use no managed names)."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):
        def __init__(self):
            super().__init__(None)

        def load(self):
            return {}

    return transform(template, parameters, NoManagedPolicies())


def test_three_setups_are_generated(packages):
    import zipfile

    for name, result in packages.items():
        out = result.out_dir
        if result.plan.setup == "zip-snapstart":
            for rel in ("function.zip", "manifest.json", "template.yaml", "README.md"):
                assert (out / rel).is_file(), f"{name}: {rel} missing"
            assert not (out / "Dockerfile").exists() and not (out / "coldbrew-src").exists()
            continue
        for rel in ("Dockerfile", ".dockerignore", "requirements.txt", "template.yaml", "README.md"):
            assert (out / rel).is_file(), f"{name}: {rel} missing"
        assert (out / "coldbrew-src" / "pyproject.toml").is_file()
        assert (out / "coldbrew-src" / "coldbrew" / "aws.py").is_file()
        assert not list((out / "coldbrew-src").rglob("__pycache__")), "bytecode from this machine was copied"
    assert (packages["image-disk"].out_dir / "model" / "tiny.brew").is_file()
    assert not (packages["image-s3"].out_dir / "model").exists()
    with zipfile.ZipFile(packages["zip-snapstart"].out_dir / "function.zip") as zf:
        assert "model/tiny.brew" in zf.namelist() and "coldbrew/aws.py" in zf.namelist()
    with zipfile.ZipFile(packages["zip-snapstart-s3"].out_dir / "function.zip") as zf:
        assert not [n for n in zf.namelist() if n.endswith(".brew")]


def test_environment_matches_the_study_setups(packages):
    disk = _dockerfile_env(packages["image-disk"].out_dir / "Dockerfile")
    assert disk["MODEL_SOURCE"] == "DISK" and disk["MODEL_URI"] == "/var/task/model/tiny.brew"
    s3 = _dockerfile_env(packages["image-s3"].out_dir / "Dockerfile")
    assert s3["MODEL_SOURCE"] == "S3" and s3["MODEL_URI"] == S3_URI
    template = _parse_template(packages["image-s3"].out_dir / "template.yaml")
    variables = template["Resources"]["ModelFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MODEL_SOURCE"] == "S3"
    assert variables["MODEL_URI"] == {"Fn::Sub": "s3://${ModelBucket}/${ModelKey}"}
    assert template["Parameters"]["ModelBucket"]["Default"] == "coldbrew-models"
    assert template["Parameters"]["ModelKey"]["Default"] == "prod/tiny.brew"


def test_templates_pass_cfn_lint_with_zero_errors(packages):
    from cfnlint.api import lint_file

    for name, result in packages.items():
        matches = lint_file(result.out_dir / "template.yaml")
        errors = [m for m in matches if m.rule.id.startswith("E")]
        assert not errors, f"{name}: " + "\n".join(str(m) for m in errors)
        assert not matches, f"{name} warnings: " + "\n".join(str(m) for m in matches)


def test_templates_transform_with_samtranslator(packages, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name, result in packages.items():
        template = _parse_template(result.out_dir / "template.yaml")
        props = template["Resources"]["ModelFunction"]["Properties"]
        params = {}
        if result.plan.setup == "zip-snapstart":
            # `sam deploy` uploads the local function.zip and rewrites CodeUri to its S3 location first.
            assert props["CodeUri"] == "function.zip" and (result.out_dir / "function.zip").is_file()
            props["CodeUri"] = "s3://sam-artifacts/function.zip"
        else:
            params["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/coldbrew:latest"
        out = _transform(copy.deepcopy(template), params)["Resources"]
        types = {r["Type"] for r in out.values()}
        assert {"AWS::Lambda::Function", "AWS::Lambda::Alias", "AWS::Lambda::Version"} <= types, name
        assert {"AWS::ApiGatewayV2::Api", "AWS::Events::Rule"} <= types, name

        function = out["ModelFunction"]["Properties"]
        assert function["MemorySize"] == {"Ref": "MemorySize"}
        assert template["Parameters"]["MemorySize"]["Default"] == 4500
        assert function["Architectures"] == ["x86_64"]
        body = out["HttpApi"]["Properties"]["Body"]
        paths = body["paths"]
        assert {"/", "/predict", "/openapi.json"} <= set(paths), name
        assert "get" in paths["/"]
        # The warm-up route exists only when asked for; the direct-invocation warm-up needs none.
        if result.plan.warm_route:
            assert "post" in paths["/_warm"], name
            assert out["WarmSecret"]["Type"] == "AWS::SecretsManager::Secret"
            assert out["WarmSecret"]["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
            secret_env = function["Environment"]["Variables"]["COLDBREW_WARM_SECRET"]
            assert secret_env == {"Fn::Sub": "{{resolve:secretsmanager:${WarmSecret}}}"}, name
        else:
            assert "/_warm" not in paths, f"{name}: /_warm is public without --warm-route"
            assert "WarmSecret" not in out and "COLDBREW_WARM_SECRET" not in function["Environment"]["Variables"]
        # --auth iam: every route demands a SigV4 signature; otherwise no route has an authorizer.
        operations = [op for methods in paths.values() for op in methods.values()]
        if result.plan.auth == "iam":
            assert all(op.get("security") == [{"AWS_IAM": []}] for op in operations), name
            scheme = body["components"]["securitySchemes"]["AWS_IAM"]
            assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
        else:
            assert not any("security" in op for op in operations), name
        # Cost has a ceiling: stage throttling from parameters whose defaults fit the study's load.
        stage = next(r for r in out.values() if r["Type"] == "AWS::ApiGatewayV2::Stage")
        assert stage["Properties"]["DefaultRouteSettings"] == {
            "ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"},
        }
        parameters = template["Parameters"]
        users, min_wait_s = 100, 3  # the study: 100 locust users, each waiting 3-5 s between requests
        assert parameters["ThrottleRateLimit"]["Default"] >= users / min_wait_s
        assert parameters["ThrottleBurstLimit"]["Default"] >= users
        assert function["ReservedConcurrentExecutions"] == {
            "Fn::If": ["HasReserved", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
        }
        assert parameters["ReservedConcurrency"]["Default"] == 0  # 0 = no reservation (HasReserved false)

        alias = out["ModelFunctionAliaslive"]["Properties"]
        if result.plan.setup == "zip-snapstart":
            assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
            assert function["Runtime"] == "python3.12" and function["Handler"] == "coldbrew.aws.handler"
            assert "ProvisionedConcurrencyConfig" not in alias  # SnapStart excludes it
        else:
            assert function["PackageType"] == "Image"
            assert alias["ProvisionedConcurrencyConfig"]["Fn::If"][0] == "HasProvisioned"

        # The warmer fans out to the alias, on the schedule, only when WarmConcurrency > 0.
        assert out["WarmerFunction"]["Condition"] == "HasWarmer"
        rule = next(r for r in out.values() if r["Type"] == "AWS::Events::Rule")
        assert rule["Properties"]["ScheduleExpression"] == {"Ref": "WarmSchedule"}
        warmer_env = out["WarmerFunction"]["Properties"]["Environment"]["Variables"]
        assert warmer_env["TARGET"] == {"Ref": "ModelFunctionAliaslive"}
        assert warmer_env["CONCURRENCY"] == {"Ref": "WarmConcurrency"}

        statements = [
            s
            for p in out["ModelFunctionRole"]["Properties"].get("Policies", [])
            for s in p["PolicyDocument"]["Statement"]
        ]
        if result.plan.model_source == "S3":
            assert statements == [
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ModelBucket}/${ModelKey}"},
                }
            ], f"{name}: S3 access must be scoped to the model object"
        else:
            assert statements == [], f"{name}: a model on disk needs no S3 access"


def _copy_sources(instruction: dict) -> list[str]:
    value = instruction["value"].strip()
    if value.startswith("["):  # exec (JSON) form: the last element is the destination
        return json.loads(value)[:-1]
    words = [w for w in shlex.split(value) if not w.startswith("--")]
    return words[:-1]


def _dockerfile_env(path: Path) -> dict:
    """The final stage's environment as Docker reads it (dockerfile-parse unquotes ENV values)."""
    from dockerfile_parse import DockerfileParser

    return DockerfileParser(path=str(path)).envs


def test_dockerfiles_parse_and_copy_only_files_in_the_context(packages):
    from dockerfile_parse import DockerfileParser

    for name, result in _images(packages).items():
        parser = DockerfileParser(path=str(result.out_dir / "Dockerfile"))
        structure = parser.structure
        froms = [i["value"] for i in structure if i["instruction"] == "FROM"]
        assert len(froms) == 2, f"{name}: expected a multi-stage build"
        assert froms[0].endswith(f"{tpl.BASE_IMAGE} AS build")
        ignored = {
            line.strip().rstrip("/")
            for line in (result.out_dir / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
        for instruction in structure:
            if instruction["instruction"] not in ("COPY", "ADD"):
                continue
            if "--from=" in instruction["value"]:
                continue  # copies from a build stage, not from the context
            for src in _copy_sources(instruction):
                assert (result.out_dir / src).exists(), f"{name}: COPY {src} is not in the build context"
                assert src.split("/")[0] not in ignored, f"{name}: COPY {src} is excluded by .dockerignore"
        # coldbrew itself is installed in the build stage, inside the Lambda base image.
        build_stage = parser.content.split("\nFROM ")[1]
        assert "COPY coldbrew-src/ /src/" in build_stage and "--no-deps" in build_stage
        assert parser.structure[-1]["instruction"] == "CMD"
        assert parser.structure[-1]["value"] == '["coldbrew.aws.handler"]'


def test_native_parts_are_compiled_inside_the_lambda_image(packages, tmp_path):
    plan = copy.copy(packages["image-disk"].plan)
    plan.native_build = True
    text = tpl.dockerfile(plan)
    build_stage, final_stage = text.split(f"\nFROM --platform=linux/amd64 {tpl.BASE_IMAGE}\n")
    assert "dnf install -y gcc" in build_stage and "gcc" not in final_stage
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "kernel.py").write_text("")
    assert not has_native_sources(tmp_path / "pkg")
    (tmp_path / "pkg" / "_kernel.c").write_text("int x;")
    assert has_native_sources(tmp_path / "pkg")


def _requirements(result) -> list[str]:
    return (result.out_dir / "requirements.txt").read_text().split()


def test_brew_setups_need_no_sklearn_pandas_or_scipy(packages):
    for name, result in _images(packages).items():
        lines = _requirements(result)
        assert all("==" in line for line in lines), f"{name}: requirements must be pinned"
        names = {line.split("==")[0].lower() for line in lines}
        assert {"numpy", "apig-wsgi"} <= names
        assert "coldbrew" not in names  # installed from coldbrew-src with --no-deps
        if result.plan.model_format == "brew":
            assert not names & set(HEAVY), f"{name}: {sorted(names & set(HEAVY))}"
        else:
            from importlib.metadata import version

            assert f"scikit-learn=={version('scikit-learn')}" in lines  # unpickling needs the same version


def test_zip_is_the_model_plus_the_serving_code_and_pure_python_dependencies(packages, tiny_brew):
    import zipfile

    for name in ("zip-snapstart", "zip-snapstart-s3"):
        result = packages[name]
        manifest = json.loads((result.out_dir / "manifest.json").read_text())
        with zipfile.ZipFile(result.out_dir / "function.zip") as zf:
            assert sum(i.file_size for i in zf.infolist()) == manifest["unzipped_bytes"]
            tops = {n.split("/")[0] for n in zf.namelist()}
        assert not tops & {"numpy", "boto3", "botocore", "sklearn"}, f"{name}: {sorted(tops)}"
        assert "apig_wsgi" in tops and "apig-wsgi" in manifest["dependencies"]
        model = tiny_brew.stat().st_size if result.plan.model_in_artifact else 0
        assert manifest["unzipped_bytes"] <= model + 2 * 1024 * 1024, name
        assert result.size_parts.get("model", 0) == model
        assert sum(v for v in result.size_parts.values() if v) == manifest["unzipped_bytes"]
        assert "manylinux2014_x86_64" in manifest["target"] and manifest["arch"] == "x86_64"
        checks = {c.name: c for c in result.checks}
        assert checks["size"].status == "ok" and checks["smoke"].status == "skipped"
        assert [c for c in result.checks if c.name.startswith("ELF")][0].status == "ok"


def test_zip_refuses_pickles_with_the_way_out(tmp_path, tiny_model):
    with pytest.raises(ColdbrewError, match="zip-snapstart serves .brew models only.*coldbrew compile"):
        package(str(tiny_model), "zip-snapstart", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_readme_has_the_exact_commands(packages):
    image = (packages["image-s3"].out_dir / "README.md").read_text()
    for command in (
        "docker build --platform linux/amd64",
        "aws ecr create-repository",
        "aws ecr get-login-password",
        "docker push $IMAGE",
        "sam deploy --guided",
        f"aws s3 cp {shlex.quote(str(packages['image-s3'].plan.model_path))}",
    ):
        assert command in image, command
    zip_readme = (packages["zip-snapstart"].out_dir / "README.md").read_text()
    assert "docker" not in zip_readme.lower() or "no Docker" in zip_readme
    assert "sam deploy --guided --template-file template.yaml" in zip_readme
    assert "| smoke | skipped | --no-smoke |" in zip_readme  # the checks that ran, as run


def test_invalid_combinations_are_one_line_errors(tmp_path, tiny_brew):
    with pytest.raises(ColdbrewError, match="local model file"):
        package(S3_URI, "image-disk", tmp_path / "a")
    with pytest.raises(ColdbrewError, match="--s3-uri"):
        package(str(tiny_brew), "image-s3", tmp_path / "b")
    with pytest.raises(ColdbrewError, match="not found"):
        package(str(tmp_path / "missing.brew"), "image-disk", tmp_path / "c")
    with pytest.raises(ColdbrewError, match="s3://bucket/key"):
        package(str(tiny_brew), "image-s3", tmp_path / "d", s3_uri="https://example/x")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("mine")
    with pytest.raises(ColdbrewError, match="--force"):
        package(str(tiny_brew), "image-disk", tmp_path / "e")
    package(str(tiny_brew), "image-disk", tmp_path / "e", force=True)
    assert (tmp_path / "e" / "keep.txt").read_text() == "mine"


def test_zip_over_the_limit_is_refused_before_copying(tmp_path):
    big = tmp_path / "big.brew"
    with open(big, "wb") as fh:
        fh.truncate(LAMBDA_ZIP_LIMIT)  # sparse: costs no disk
    with pytest.raises(ColdbrewError, match="--s3-uri .* or use --setup image-s3 or image-disk"):
        package(str(big), "zip-snapstart", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_prints_the_files_and_sizes(tmp_path, tiny_brew, capsys):
    from coldbrew.cli import main

    assert main(["package", str(tiny_brew), "--setup", "zip-snapstart", "-o", str(tmp_path / "z"), "--no-smoke"]) == 0
    out = capsys.readouterr().out
    assert "function.zip" in out and "template.yaml" in out and "manylinux2014_x86_64" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.split()[:3] == ["check", "result", "detail"])
    smoke_row = next(line for line in lines if line.split()[:1] == ["smoke"])
    assert smoke_row.index("skipped") == header.index("result")  # an aligned table
    assert "--no-smoke" in smoke_row
    assert len([line for line in lines if line.split()[:1] == ["bytecode"]]) == 1  # one line: whether, for which


def test_cli_says_in_one_line_when_the_zip_ships_no_bytecode(tmp_path, tiny_brew, capsys, monkeypatch):
    import sys

    from coldbrew.cli import main

    pytest.importorskip("ziglang", reason="the zip setup cross-builds the kernel with ziglang (deploy extra)")
    if sys.version_info[:2] == (3, 12):
        pytest.skip("this interpreter is the runtime's version: it is always found")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no python3.12 on PATH nor in pyenv
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    assert main(["package", str(tiny_brew), "--setup", "zip-snapstart", "-o", str(tmp_path / "z"), "--no-smoke"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["bytecode"]]
    assert len(rows) == 1 and "warning" in rows[0] and "no python3.12 found" in rows[0], rows
    assert json.loads((tmp_path / "z" / "manifest.json").read_text())["bytecode"]["included"] is False
    # an explicit interpreter of another version is refused: its bytecode would never be used
    wrong = ["--target-python", sys.executable]
    assert main(["package", str(tiny_brew), "--setup", "zip-snapstart", "-o", str(tmp_path / "w"), *wrong]) == 1
    err = capsys.readouterr().err
    assert "--target-python" in err and "never be used" in err and not (tmp_path / "w" / "function.zip").exists()
    assert main(["package", S3_URI, "--setup", "image-disk", "-o", str(tmp_path / "y")]) == 1
    assert "image-disk copies the model" in capsys.readouterr().err


def _function_environment(result, secret: str) -> dict[str, str]:
    """ModelFunction's environment as CloudFormation would resolve it, with /var/task mapped to the package."""
    template = _parse_template(result.out_dir / "template.yaml")
    resolved = {}
    for name, value in template["Resources"]["ModelFunction"]["Properties"]["Environment"]["Variables"].items():
        if value == {"Fn::Sub": "{{resolve:secretsmanager:${WarmSecret}}}"}:
            value = secret  # what the dynamic reference resolves to: the generated secret string
        elif value == {"Fn::Sub": "s3://${ModelBucket}/${ModelKey}"}:
            value = result.plan.s3_uri  # the parameters' defaults
        assert isinstance(value, str), f"{name}: {value!r}"
        resolved[name] = value.replace(tpl.TASK_ROOT, str(result.out_dir))
    return resolved


def test_packaged_function_guards_its_warm_route(packages, capsys):
    """The handler, run with the environment the template gives it: /_warm needs the secret and holds briefly."""
    from coldbrew.runtimes.aws_lambda import MAX_HTTP_HOLD_MS, init_from_env

    event = json.loads((Path(__file__).parents[1] / "events" / "http-v2-warm.json").read_text())

    def warm(handler, secret=None, hold_ms=0):
        request = copy.deepcopy(event)
        request["body"] = json.dumps({"hold_ms": hold_ms})
        if secret is not None:
            request["headers"]["x-coldbrew-warm-secret"] = secret
        return handler(request, None)["statusCode"]

    secret = "Zq8RkG2mWn4PxT7vYc1LbH5sJd9FaE3u"
    guarded = init_from_env(_function_environment(packages["image-disk-warm-route-iam"], secret))
    assert warm(guarded) == 403 and warm(guarded, "guess") == 403
    assert warm(guarded, secret) == 200
    assert warm(guarded, secret, hold_ms=MAX_HTTP_HOLD_MS + 1) == 400
    default = init_from_env(_function_environment(packages["image-disk"], secret))
    assert warm(default) == 404 and warm(default, secret) == 404


def test_pickle_setups_allow_pickle_and_brew_setups_do_not(packages):
    for name, result in packages.items():
        variables = _function_environment(result, "unused")
        zipped = result.plan.setup == "zip-snapstart"
        dockerfile = {} if zipped else _dockerfile_env(result.out_dir / "Dockerfile")
        if result.plan.model_format == "pickle":
            assert variables["COLDBREW_ALLOW_PICKLE"] == "1", name
            if not zipped:
                assert dockerfile["COLDBREW_ALLOW_PICKLE"] == "1", name
        else:
            assert "COLDBREW_ALLOW_PICKLE" not in variables and "COLDBREW_ALLOW_PICKLE" not in dockerfile, name


def test_cli_opens_the_doors_it_is_asked_to(tmp_path, tiny_brew, capsys):
    from coldbrew.cli import main

    assert (
        main(
            [
                "package",
                str(tiny_brew),
                "--setup",
                "image-disk",
                "-o",
                str(tmp_path / "d"),
                "--warm-route",
                "--auth",
                "iam",
            ]
        )
        == 0
    )
    assert "auth iam, /_warm route on" in capsys.readouterr().out
    template = _parse_template(tmp_path / "d" / "template.yaml")
    assert template["Resources"]["ModelFunction"]["Properties"]["Events"]["Warm"]["Properties"]["Path"] == "/_warm"
    assert template["Resources"]["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    readme = (tmp_path / "d" / "README.md").read_text()
    assert "--warm-route --auth iam" in readme and "WarmSecretArn" in readme and "--sigv4" in readme
    with pytest.raises(SystemExit):
        main(["package", str(tiny_brew), "--setup", "image-disk", "-o", str(tmp_path / "e"), "--auth", "open"])


# ---- the README's example, CORS, units and limits (issue 22) --------------------------------------------------------
def test_readme_try_it_sends_the_models_own_example_which_the_app_answers(families, tmp_path):
    import io
    from wsgiref.util import setup_testing_defaults

    from coldbrew.app import create_app
    from coldbrew.engine import load_predictor

    family = families["multiclass-unlabelled"]  # iris: features unlike the census model's
    package(str(family.brew), "image-disk", tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "fnlwgt" not in readme
    line = next(line for line in readme.splitlines() if line.strip().startswith("-d "))
    body = json.loads(shlex.split(line.strip().removesuffix("\\"))[1])
    assert list(body) == list(family.features)
    raw = json.dumps(body).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "wsgi.input": io.BytesIO(raw)}
    environ.update(CONTENT_LENGTH=str(len(raw)), CONTENT_TYPE="application/json")
    setup_testing_defaults(environ)
    statuses = []
    out = b"".join(create_app(load_predictor(family.brew))(environ, lambda s, h, e=None: statuses.append(s)))
    answer = json.loads(out)
    assert statuses == ["200 OK"] and answer["prediction"] in {"0", "1", "2"}, answer


def test_cors_origins_become_the_http_apis_cors_configuration(tiny_brew, tmp_path, monkeypatch):
    from cfnlint.api import lint_file

    origins = ["https://app.example.com", "http://localhost:3000"]
    package(str(tiny_brew), "image-disk", tmp_path / "out", cors=origins, auth="iam")
    template = _parse_template(tmp_path / "out" / "template.yaml")
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == origins and "POST" in cors["AllowMethods"]
    assert "content-type" in cors["AllowHeaders"] and "authorization" in cors["AllowHeaders"]
    assert not lint_file(tmp_path / "out" / "template.yaml")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    params = {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/coldbrew:latest"}
    out = _transform(copy.deepcopy(template), params)["Resources"]
    api = next(r for r in out.values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    assert api["Properties"]["Body"]["x-amazon-apigateway-cors"]["allowOrigins"] == origins
    assert "--cors https://app.example.com --cors http://localhost:3000" in (tmp_path / "out" / "README.md").read_text()
    package(str(tiny_brew), "image-disk", tmp_path / "plain")
    assert (
        "CorsConfiguration"
        not in _parse_template(tmp_path / "plain" / "template.yaml")["Resources"]["HttpApi"]["Properties"]
    )


@pytest.mark.parametrize(
    "origin", ["https://app.example.com/path", "app.example.com", "javascript:alert(1)", "https://a.com\n", ""]
)
def test_a_bad_cors_origin_is_one_line(tiny_brew, tmp_path, origin):
    with pytest.raises(ColdbrewError, match="--cors"):
        package(str(tiny_brew), "image-disk", tmp_path / "out", cors=[origin])
    assert not (tmp_path / "out").exists()


def test_timeout_and_memory_take_units_within_lambdas_limits(tiny_brew):
    from coldbrew.deploy.package import make_plan

    for given, seconds in (("30s", 30), ("2m", 120), ("15m", 900), (45, 45), ("1m30s", 90)):
        assert make_plan(str(tiny_brew), "image-disk", timeout=given).timeout == seconds
    for given in ("16m", "0s", "1.5s", "soon", "901"):
        with pytest.raises(ColdbrewError, match="--timeout"):
            make_plan(str(tiny_brew), "image-disk", timeout=given)
    # the sizes parser's units (binary, as Lambda's "MB"): 4.5G is 4,608 MB
    for given, mb in (("4500", 4500), ("4500MB", 4500), (128, 128), ("10240", 10240), ("4.5G", 4608), ("1G", 1024)):
        assert make_plan(str(tiny_brew), "image-disk", memory=given).memory == mb
    for given in ("127", "10241", "1.0001G", "-1", "lots", "11G"):
        with pytest.raises(ColdbrewError, match="--memory"):
            make_plan(str(tiny_brew), "image-disk", memory=given)


def test_cli_accepts_a_duration_for_timeout(tiny_brew, tmp_path, capsys):
    from coldbrew.cli import main

    assert (
        main(["package", str(tiny_brew), "--setup", "image-disk", "-o", str(tmp_path / "a"), "--timeout", "30s"]) == 0
    )
    assert "30 s" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # argparse's usage error: exit 2 and one line
        main(["package", str(tiny_brew), "--setup", "image-disk", "-o", str(tmp_path / "b"), "--timeout", "16m"])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "15m" in err and not (tmp_path / "b").exists()


@pytest.mark.integration
def test_a_build_refused_midway_leaves_nothing_in_the_output(softmax_brew, tmp_path, monkeypatch):
    """numpy cannot be fetched (an index that refuses connections): the zip build stops after -o was created."""
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    monkeypatch.setenv("COLDBREW_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(ColdbrewError, match="pip could not fetch numpy"):
        package(str(softmax_brew), "zip-snapstart", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("mine")
    with pytest.raises(ColdbrewError, match="pip could not fetch numpy"):
        package(str(softmax_brew), "zip-snapstart", tmp_path / "kept", force=True)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["mine.txt"]


@pytest.fixture
def softmax_brew(families):
    """A model with a softmax output: scikit-learn's multiclass GradientBoosting (iris)."""
    return families["multiclass-unlabelled"].brew


def test_deploy_modules_import_no_circle():
    """package -> render -> plan, zipbuild -> render: the Plan lives in its own module (issue 22)."""
    from test_layers import coldbrew_imports, modules

    graph = {
        name: {m for m in coldbrew_imports(name, path) if m.startswith("coldbrew.deploy.")}
        for name, path in modules()
        if name.startswith("coldbrew.deploy.")
    }

    def reaches(start: str, goal: str, seen: set) -> bool:
        return any(
            n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)) for n in graph.get(start, ())
        )

    circles = [name for name in graph if reaches(name, name, set())]
    assert not circles, circles
