"""How the agent guard reads a shell command's places: a ``cd`` (or ``pushd``; cmd's ``cd /d``
and ``chdir``, PowerShell's ``Set-Location`` and ``Push-Location``) moves the working folder of the
commands after it, ``git -C DIR`` runs git in DIR, ``find``'s start points are
what it deletes whatever options come first, and a relative path that climbs to a home's
credential store is read as that store. Verdicts are compared with the command written with the
path it names, so that each reading is checked against one the guard already makes."""

from __future__ import annotations

import pytest

from agent_fixtures import HOME, PROJECT, QUIET, assert_judged_alike, bash
from convguard.agent import assess_tool_call
from convguard.agent.paths import changed_folder, places
from convguard.agent.shell import Dialect, parse_script

_SYSTEM_TREE = "linux.recursive-delete-system-tree"
_HERE = "linux.recursive-delete-everything-here"
_READS = "linux.reads-credential-store"


@pytest.mark.parametrize(
    ("cwd", "target", "after"),
    [
        (None, "/etc", "/etc"),
        (None, "/tmp/build/", "/tmp/build/"),
        (None, "/usr/local/../lib", "/usr/lib"),
        (None, "~", "~"),
        (None, "~/.ssh", "~/.ssh"),
        (None, "$HOME/.aws", "~/.aws"),
        (None, "/home/alice", "/home/alice"),
        (None, None, "~"),  # cd alone goes home
        (None, "project", None),  # relative to a folder not known
        (None, "..", None),
        (PROJECT, "..", HOME),
        (PROJECT, "src", "/home/alice/project/src"),
        (PROJECT, "/etc", "/etc"),
        ("~", ".ssh", "~/.ssh"),
        ("~", "..", None),  # above the home: /home or /Users, not known which
        (PROJECT, "-", None),  # the previous folder is not known
        (PROJECT, "$X", None),
        (PROJECT, "~bob", None),
        (PROJECT, "C:\\Users", None),
    ],
)
def test_a_cd_moves_the_working_folder_lexically(
    cwd: str | None, target: str | None, after: str | None
) -> None:
    assert changed_folder(cwd, target) == after


@pytest.mark.parametrize(
    ("script", "cwd", "folders"),
    [
        ("cd /etc && ls && cat passwd", None, [None, "/etc", "/etc"]),
        ("cd /etc; ls\nls", None, [None, "/etc", "/etc"]),
        ("cd /nowhere || ls", None, [None, "/nowhere"]),
        ("pushd /etc && ls", None, [None, "/etc"]),
        ("cd && ls", PROJECT, [PROJECT, "~"]),
        ("cd - && ls", HOME, [HOME, None]),
        ('cd "$X" && ls', HOME, [HOME, None]),
        ("cd project && ls", None, [None, None]),
        ("cd src && cd .. && ls", PROJECT, [PROJECT, PROJECT + "/src", PROJECT]),
        # a cd in a pipeline or in the background runs in a subshell of its own
        ("cd /etc | ls; ls", HOME, [HOME, HOME, HOME]),
        ("cd /etc & ls", HOME, [HOME, HOME]),
        # a subshell's cd ends with it
        ("(cd /etc && ls); ls", HOME, [HOME, "/etc", HOME]),
        ("(cd /etc; ls) | wc -l; ls", HOME, [HOME, "/etc", "/etc", HOME]),
        # what a nested shell or a command substitution does stays there
        ("bash -c 'cd /etc'; ls", HOME, [HOME, HOME, HOME]),
        ("echo $(cd /etc && pwd); ls", HOME, [HOME, "/etc", HOME, HOME]),
    ],
)
def test_a_cd_sets_the_folder_of_the_commands_after_it(
    script: str, cwd: str | None, folders: list[str | None]
) -> None:
    assert [c.cwd for c in parse_script(script, cwd=cwd).commands] == folders


@pytest.mark.parametrize(
    ("cwd", "moved", "direct"),
    [
        (None, "cd ~ && rm -rf .", "rm -rf ~"),
        (None, "cd / && rm -rf *", "rm -rf /*"),
        (None, "cd /etc; rm -rf .", "rm -rf /etc"),
        (None, "cd\nrm -rf .", "rm -rf ~"),
        (None, "pushd /usr >/dev/null && rm -rf *", "rm -rf /usr/*"),
        (PROJECT, "cd .. && rm -rf .", "rm -rf ~"),
        (PROJECT, "cd && rm -rf *", "rm -rf ~/*"),
        (None, "cd ~/.ssh && cat id_rsa", "cat ~/.ssh/id_rsa"),
        (None, "cd $HOME/.aws; grep key credentials", "grep key ~/.aws/credentials"),
        (HOME, "cd .ssh && base64 < id_ed25519", "base64 < ~/.ssh/id_ed25519"),
        (None, "cd /etc && cat shadow", "cat /etc/shadow"),
    ],
)
def test_a_command_after_cd_is_judged_where_it_runs(
    cwd: str | None, moved: str, direct: str
) -> None:
    assert_judged_alike(bash(moved, cwd), bash(direct))


@pytest.mark.parametrize(
    ("cwd", "command", "verdict"),
    [
        (None, "cd project && rm -rf build", "allow"),
        (HOME, "cd project && rm -rf build", "allow"),
        (None, "cd /tmp/build && rm -rf dist", "allow"),
        # the folder named is an ordinary one: "." is not the home, and everything in it is asked
        (None, "cd /tmp/build && rm -rf .", "ask"),
        ("/tmp/build", "rm -rf .", "ask"),  # the same folder given by the caller: the same verdict
        (None, 'cd "$X" && rm -rf .', "ask"),  # not known where: as before
        (HOME, "cd - && rm -rf .", "ask"),
        (HOME, "(cd /tmp/x && rm -rf build); ls", "allow"),
        (HOME, "(cd /tmp/x); rm -rf .", "deny"),  # the subshell's cd ends with it
        (HOME, "cd /etc | rm -rf .", "deny"),  # a pipeline's cd moves nothing
        (None, "cd ~/src/site && npm run build && cat dist/index.html", "allow"),
    ],
)
def test_a_cd_elsewhere_keeps_ordinary_work_ordinary(
    cwd: str | None, command: str, verdict: str
) -> None:
    assert bash(command, cwd).verdict == verdict


@pytest.mark.parametrize(
    ("script", "dialect", "cwd", "folders"),
    [
        ("cd /d /etc && type passwd", "cmd", None, [None, "/etc"]),
        ("chdir /etc & type passwd", "cmd", None, [None, "/etc"]),  # cmd's & runs one after another
        ("cd /D D:\\build && del /s /q *", "cmd", PROJECT, [PROJECT, None]),  # not resolved
        ("cd && dir", "cmd", PROJECT, [PROJECT, PROJECT]),  # cmd's cd alone prints the folder
        ("cd.. && dir", "cmd", PROJECT, [PROJECT, HOME]),
        ("cd ~ && dir", "cmd", PROJECT, [PROJECT, None]),  # cmd has no ~ home
        ("pushd /etc && type passwd && popd && dir", "cmd", HOME, [HOME, "/etc", "/etc", None]),
        ("Set-Location ~/.ssh; Get-Content id_rsa", "powershell", None, [None, "~/.ssh"]),
        ("sl -Path /etc -PassThru; gc passwd", "powershell", None, [None, "/etc"]),
        ("Set-Location -LiteralPath .. ; ls", "powershell", PROJECT, [PROJECT, HOME]),
        ("cd src; cd ..; ls", "powershell", PROJECT, [PROJECT, PROJECT + "/src", PROJECT]),
        ("Push-Location -StackName s /etc; gc passwd", "powershell", None, [None, "/etc"]),
        ("Push-Location; ls", "powershell", HOME, [HOME, HOME]),
        ("Pop-Location; ls", "powershell", HOME, [HOME, None]),
        ("cd -; ls", "powershell", HOME, [HOME, None]),  # the location history is not followed
        ("cd; ls", "powershell", HOME, [HOME, None]),  # home since PowerShell 6.2, not before
        ("Set-Location C:\\Windows; ls", "powershell", HOME, [HOME, None]),
        ("cd /etc & ls", "powershell", HOME, [HOME, HOME]),  # PowerShell's & runs it as a job
    ],
)
def test_cmd_and_powershell_moves_set_the_folder_of_the_commands_after_it(
    script: str, dialect: Dialect, cwd: str | None, folders: list[str | None]
) -> None:
    assert [c.cwd for c in parse_script(script, dialect=dialect, cwd=cwd).commands] == folders


@pytest.mark.parametrize(
    ("tool", "moved", "direct"),
    [
        ("PowerShell", "Set-Location ~/.ssh; Get-Content id_rsa", "Get-Content ~/.ssh/id_rsa"),
        ("PowerShell", "sl /etc; Get-Content shadow", "Get-Content /etc/shadow"),
        ("PowerShell", "Push-Location $HOME/.aws; gc credentials", "gc ~/.aws/credentials"),
        ("cmd", "cd /d /etc && type shadow", "type /etc/shadow"),
        ("cmd", "chdir /home/alice/.ssh & type id_rsa", "type /home/alice/.ssh/id_rsa"),
    ],
)
def test_a_command_after_a_cmd_or_powershell_move_is_judged_where_it_runs(
    tool: str, moved: str, direct: str
) -> None:
    here = assess_tool_call(tool, {"command": moved}, classifier=QUIET)
    there = assess_tool_call(tool, {"command": direct}, classifier=QUIET)
    assert there.verdict != "allow", there
    assert here.verdict == there.verdict, here
    # the script text's own indicators read the path as written, so only the command rules agree
    commands = {f.rule_id for f in there.findings if not f.rule_id.startswith("text.")}
    assert commands <= set(here.rule_ids), here


@pytest.mark.parametrize("cwd", [None, HOME, PROJECT, "/var/log", "/etc", "/"])
@pytest.mark.parametrize(
    "expression",
    [
        "-name '*.log' -delete",
        "-type f -delete",
        "-delete",
        "-mindepth 1 -delete",
        "-exec rm -rf {} +",
        "-name '*.tmp' -exec rm {} +",
    ],
)
def test_find_with_no_start_point_searches_the_working_folder(
    cwd: str | None, expression: str
) -> None:
    bare, here = bash(f"find {expression}", cwd), bash(f"find . {expression}", cwd)
    # the rules may differ (find's own log rule reads the "." written), never the verdict
    assert (bare.verdict, bare.categories) == (here.verdict, here.categories), bare


@pytest.mark.parametrize(
    ("cwd", "command", "verdict", "rule"),
    [
        (None, "find * -delete", "ask", _HERE),
        (None, "find -L . -delete", "ask", _HERE),
        (None, "find -P . -xdev -delete", "ask", _HERE),
        (None, "find . -depth -delete", "ask", _HERE),
        (None, "find . -mount -depth -delete", "ask", _HERE),
        (None, "find -L ~ -delete", "deny", _SYSTEM_TREE),
        (None, "find -H / -depth -delete", "deny", _SYSTEM_TREE),
        (None, "find /etc -xdev -delete", "deny", _SYSTEM_TREE),
        (HOME, "find * -delete", "deny", _SYSTEM_TREE),
        (HOME, "find -L . -delete", "deny", _SYSTEM_TREE),
        (None, "find -L . -exec rm -rf {} +", "ask", _HERE),
    ],
)
def test_find_deletes_its_start_points_whatever_options_come_first(
    cwd: str | None, command: str, verdict: str, rule: str
) -> None:
    found = bash(command, cwd)
    assert (found.verdict, rule in found.rule_ids) == (verdict, True), found


@pytest.mark.parametrize(
    "command",
    [
        "find . -name '*.pyc' -delete",
        "find -L . -name '*.pyc' -delete",
        "find * -type f -name '*.o' -delete",
        "find . -maxdepth 1 -delete",
        "find /tmp/build -depth -delete",
    ],
)
def test_find_with_a_test_or_in_scratch_stays_allowed(command: str) -> None:
    assert bash(command).verdict == "allow"
    assert bash(command, PROJECT).verdict == "allow"


@pytest.mark.parametrize(
    ("cwd", "relative", "absolute"),
    [
        (None, "cat ../.ssh/id_rsa", "cat ~/.ssh/id_rsa"),
        (None, "cat ../../.aws/credentials", "cat ~/.aws/credentials"),
        (None, "grep token ../.config/gh/hosts.yml", "grep token ~/.config/gh/hosts.yml"),
        (None, "cat ./../.ssh/id_ed25519", "cat ~/.ssh/id_ed25519"),
        (None, "cat src/.ssh/id_rsa", "cat ~/.ssh/id_rsa"),
        (PROJECT, "cat ../.ssh/id_rsa", "cat ~/.ssh/id_rsa"),
        ("/srv/app/current", "cat ../../.aws/credentials", "cat /srv/.aws/credentials"),
    ],
)
def test_a_relative_path_to_a_home_credential_store_is_a_secret(
    cwd: str | None, relative: str, absolute: str
) -> None:
    here, there = bash(relative, cwd), bash(absolute)
    assert there.verdict == "ask", there
    assert (here.verdict, _READS in here.rule_ids) == ("ask", True), here


@pytest.mark.parametrize(
    "command",
    [
        "cat ../.ssh/id_rsa.pub",
        "cat ../config/.npmrc",
        "cat ../README.md",
        "ls ../.ssh/id_rsa",
        "cat ../.ssh/known_hosts",
    ],
)
def test_a_relative_path_climbing_elsewhere_is_not_a_secret(command: str) -> None:
    assert bash(command).verdict == "allow"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("../.ssh/id_rsa", ("../.ssh/id_rsa", "~/.ssh/id_rsa")),
        ("../../.aws/credentials", ("../../.aws/credentials", "~/.aws/credentials")),
        ("src/.ssh/id_rsa", ("src/.ssh/id_rsa", "~/src/.ssh/id_rsa")),
        (".ssh/id_rsa", (".ssh/id_rsa",)),  # already read as the home's
        ("../src/main.py", ("../src/main.py",)),
        ("../.ssh/id_rsa.pub", ("../.ssh/id_rsa.pub",)),
        ("/etc/passwd", ("/etc/passwd",)),
    ],
)
def test_places_read_a_relative_home_store_from_a_home_when_no_folder_is_known(
    path: str, expected: tuple[str, ...]
) -> None:
    assert places(path, None) == expected


@pytest.mark.parametrize("cwd", [None, PROJECT])
@pytest.mark.parametrize(
    "path", ["src/.ssh/id_rsa", "../.ssh/id_rsa", "fixtures/home/.aws/credentials", ".ssh/id_rsa"]
)
def test_read_and_cat_agree_on_a_private_key_by_its_name(path: str, cwd: str | None) -> None:
    read = assess_tool_call("Read", {"file_path": path}, cwd=cwd, classifier=QUIET)
    cat = bash(f"cat {path}", cwd)
    assert read.verdict == cat.verdict == "ask", (read, cat)


@pytest.mark.parametrize(
    ("cwd", "command", "verdict"),
    [
        (None, "git -C ~ clean -fdx", "deny"),
        (None, "git -C / clean -fdx", "deny"),
        (None, "git -C $HOME clean -fd", "deny"),
        (None, "git -C /etc clean -xfd", "deny"),
        (None, "git -C ~ -c core.quotepath=off clean --force -d", "deny"),
        (PROJECT, "git -C .. clean -fdx", "deny"),
        (None, "git -C ../other status", "allow"),
        (None, "git -C ../other clean -fdx", "allow"),
        (PROJECT, "git -C ../other clean -fdx", "allow"),
        (None, "git -C ~ clean -n", "allow"),  # a dry run deletes nothing
        (None, "git -C ~ clean --dry-run -d", "allow"),
        (None, "git -C ~ status", "allow"),
        (None, "git -C . clean -fdx", "allow"),  # the working folder's own repository, as plain
        (None, "git clean -fdx", "allow"),
        (PROJECT, "git clean -fdx", "allow"),
        (None, "git -C /srv/repo clean -fdx", "allow"),  # a repository elsewhere: ordinary work
        (None, "git -C ~/src/app clean -fdx", "allow"),
        # however the folder is named: the caller's, a cd's or a work tree's
        (HOME, "git clean -fdx", "deny"),
        (None, "cd ~ && git clean -fdx", "deny"),
        (None, "git --git-dir=$HOME/.cfg --work-tree=$HOME clean -fdx", "deny"),
        (None, "git -C ~ clean -fdx .config", "allow"),  # a pathspec below the home
    ],
)
def test_git_in_another_folder_is_judged_as_run_there(
    cwd: str | None, command: str, verdict: str
) -> None:
    assert bash(command, cwd).verdict == verdict


def test_git_minus_c_runs_its_command_in_that_folder() -> None:
    (git,) = parse_script("git -C /etc add passwd", cwd=PROJECT).commands
    assert git.cwd == "/etc"
    (git,) = parse_script("git -C sub -C deeper log", cwd=PROJECT).commands
    assert git.cwd == PROJECT + "/sub/deeper"
