"""A model's file name is untrusted text that `coldbrew package` writes into template.yaml, the Dockerfile and the
README. Each file is built from values by its language's emitter, so no name can add a line, cut a value short
or break the file; a name with a control character is refused before anything is written.

Checked the way the real tools read the files: the template by a YAML parser that accepts CloudFormation's tags
(samtranslator's) and by cfn-lint, the Dockerfile by dockerfile-parse, the zip by running its handler (smoke test).
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pytest

from coldbrew.deploy import package as pkg
from coldbrew.deploy import smoke
from coldbrew.errors import ColdbrewError

INJECTION = 'a.brew\nCOLDBREW_ALLOW_PICKLE: "1"'
# Spaces, a YAML comment marker, a mapping indicator, quotes, a Docker variable, a backslash, non-ASCII.
HOSTILE_NAMES = [
    "my model #1: v2.brew",
    'it\'s "quoted" $HOME \\ {x}: [y] & *z.brew',
    "modèle ★ 日本語.brew",
    "- dash: start.brew",
]
CONTROL_NAMES = [
    INJECTION,
    "tab\there.brew",
    "cr\rhere.brew",
    "esc\x1b[31mred.brew",
    "rtl\u202eorb.brew",
    "ls\u2028x.brew",
]
HOST_IS_X86 = smoke.HOST_ARCH.get(platform.machine().lower()) == "x86_64"


def _named(tiny_brew: Path, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    path = folder / name
    shutil.copyfile(tiny_brew, path)
    return path


def _template(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse  # PyYAML with CloudFormation's !Ref, !Sub... tags

    return yaml_parse(path.read_text(encoding="utf-8"))


def _variables(template: dict) -> dict:
    return template["Resources"]["ModelFunction"]["Properties"]["Environment"]["Variables"]


@pytest.mark.parametrize("name", CONTROL_NAMES)
@pytest.mark.parametrize("setup", ["image-disk", "zip-snapstart"])
def test_a_name_with_a_control_character_is_refused_and_nothing_is_written(tiny_brew, tmp_path, name, setup):
    model = _named(tiny_brew, tmp_path, name)
    out = tmp_path / "out"
    with pytest.raises(ColdbrewError, match="control character U\\+") as caught:
        pkg.package(str(model), setup, out, smoke=False)
    assert "\n" not in str(caught.value).strip()
    assert not out.exists()


def test_the_injection_is_refused_by_the_cli_on_one_line(tiny_brew, tmp_path, capsys):
    from coldbrew.cli import main

    model = _named(tiny_brew, tmp_path, INJECTION)
    code = main(["package", str(model), "--setup", "zip-snapstart", "-o", str(tmp_path / "out"), "--no-smoke"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "control character U+000A" in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def _check_files(out: Path, name: str) -> None:
    """template.yaml and the Dockerfile in ``out`` carry MODEL_URI for ``name`` intact, and nothing else."""
    from dockerfile_parse import DockerfileParser

    uri = f"/var/task/model/{name}"
    template = _template(out / "template.yaml")
    assert _variables(template) == {"MODEL_SOURCE": "DISK", "MODEL_URI": uri}  # nothing added, nothing cut
    assert name in template["Description"]
    parser = DockerfileParser(path=str(out / "Dockerfile"))
    assert parser.envs["MODEL_URI"] == uri and parser.envs["MODEL_SOURCE"] == "DISK"
    assert "COLDBREW_ALLOW_PICKLE" not in parser.envs
    # the name is written into no COPY: the model is the only file of the directory copied whole
    copies = [json.loads(i["value"]) for i in parser.structure if i["instruction"] == "COPY" and "[" in i["value"]]
    assert ["model/", "/var/task/model/"] in copies
    assert name not in "".join(i["value"] for i in parser.structure if i["instruction"] != "ENV")


def test_my_model_1_v2_packages_with_model_uri_intact(tiny_brew, tmp_path):
    """The issue's case end to end: the real `package`, its template through cfn-lint."""
    from cfnlint.api import lint_file

    name = HOSTILE_NAMES[0]
    out = tmp_path / "out"
    pkg.package(str(_named(tiny_brew, tmp_path, name)), "image-disk", out)
    _check_files(out, name)
    assert [p.name for p in (out / "model").iterdir()] == [name]
    assert not lint_file(out / "template.yaml"), "cfn-lint found problems"


@pytest.mark.parametrize("name", HOSTILE_NAMES[1:])
def test_any_other_name_is_carried_intact_into_template_and_dockerfile(tiny_brew, tmp_path, name):
    """The same emitters for quotes, `$`, a backslash, brackets, a leading dash and Unicode (files rendered by
    `package`'s renderer from its plan, without copying the build context each time)."""
    plan = pkg.make_plan(str(_named(tiny_brew, tmp_path, name)), "image-disk")
    out = tmp_path / "out"
    out.mkdir()
    (out / "template.yaml").write_text(pkg.tpl.sam_template(plan), encoding="utf-8")
    (out / "Dockerfile").write_text(pkg.tpl.dockerfile(plan), encoding="utf-8")
    _check_files(out, name)


def test_an_s3_key_with_hostile_characters_is_carried_intact(tiny_brew, tmp_path):
    from cfnlint.api import lint_file

    key = "prod/my model #1: v2.brew"
    out = tmp_path / "out"
    out.mkdir()
    plan = pkg.make_plan(str(tiny_brew), "image-s3", s3_uri=f"s3://bucket/{key}")
    (out / "template.yaml").write_text(pkg.tpl.sam_template(plan), encoding="utf-8")
    (out / "README.md").write_text(pkg.tpl.readme(plan, requirements=[], estimate="?"), encoding="utf-8")
    params = _template(out / "template.yaml")["Parameters"]
    assert params["ModelKey"]["Default"] == key and params["ModelBucket"]["Default"] == "bucket"
    assert not lint_file(out / "template.yaml")
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "'s3://bucket/prod/my model #1: v2.brew'" in readme  # one shell word in the upload command


def test_a_pickle_named_brew_is_refused_before_anything_is_written(tmp_path, tiny_model):
    fake = tmp_path / "model.brew"
    shutil.copyfile(tiny_model, fake)
    for setup in ("zip-snapstart", "image-disk"):
        with pytest.raises(ColdbrewError, match="not a .brew file"):
            pkg.package(str(fake), setup, tmp_path / setup, smoke=False)
        assert not (tmp_path / setup).exists()


def test_output_that_is_a_file_is_one_line(tiny_brew, tmp_path, capsys):
    from coldbrew.cli import main

    existing = tmp_path / "taken"
    existing.write_text("mine")
    code = main(["package", str(tiny_brew), "--setup", "image-disk", "-o", str(existing)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "is a file, not a directory" in err, err
    assert existing.read_text() == "mine"


@pytest.mark.integration
@pytest.mark.skipif(not HOST_IS_X86, reason="the lab runs x86_64 zips on an x86_64 machine")
def test_the_zip_of_a_hostile_name_smoke_tests(tiny_brew, tmp_path):
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    name = HOSTILE_NAMES[0]
    model = _named(tiny_brew, tmp_path, name)
    result = pkg.package(str(model), "zip-snapstart", tmp_path / "out")
    run = {c.name: c for c in result.checks}["smoke"]
    assert run.status == "ok", run.detail
    assert _variables(_template(tmp_path / "out" / "template.yaml"))["MODEL_URI"] == f"/var/task/model/{name}"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"] == f"model/{name}"
