"""Train the agent guard's command models: ``src/convguard/assess/weights/agent_tokens*.npz``.

``--platform posix`` (the default) builds ``agent_tokens.npz``, the model of POSIX shell calls:

Positives: Atomic Red Team sh/bash attack tests of the *train* techniques; negatives: NL2Bash
commands of the *train* half plus :data:`BENIGN_DEV`, a short hand-written list of a coding
agent's everyday commands (builds, tests, containers), and :data:`BENIGN_MACOS`, everyday macOS
administration and development (``sysctl``, ``defaults``, ``~/Library``), which NL2Bash lacks.
The halves are the ones ``benchmarks/agent.py`` uses (a SHA-256 of the technique id or of the
command), so nothing of the evaluation half is seen here.

Each tool call is parsed exactly as :func:`convguard.agent.assess_tool_call` parses it and turned
into the set of its command tokens (:func:`convguard.agent.model.command_tokens`); a
logistic regression (scikit-learn, fixed seed, L2, unweighted classes) is fitted over tokens seen
in at least two calls. The ask threshold is set on out-of-fold scores of the train half (folds
grouped by technique): the score above which at most ``--max-ask`` of the NL2Bash train commands
fall, but never below ``--min-threshold``. The floor is what keeps a coding agent's everyday
commands (``kubectl get pods``, ``docker run``, a venv) allowed: NL2Bash has none of them, so its
quantile alone sets the bar too low for them.

``--platform windows`` builds ``agent_tokens_windows.npz``, the model of PowerShell and cmd calls,
the same way: positives are Atomic Red Team's PowerShell and cmd tests of the train techniques,
negatives ``training/data/benign_windows_commands.txt`` (hand-written everyday Windows commands of
a developer, an administrator or a CI script; never the benchmark's benign Windows sets). Its ask
threshold is the out-of-fold score above which at most ``--max-ask`` of that list falls, but never
below ``--min-threshold`` nor below what a call of unknown tokens alone scores (the bias) plus
``--min-margin``: a Windows command the list never saw must not be asked for being unfamiliar.

Run: ``.venv/bin/python training/agent_model.py [--platform windows]`` (needs ``../shared/data``
and scikit-learn; the package itself needs neither).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import GroupKFold  # type: ignore[import-untyped]

from convguard.agent import parsed_commands
from convguard.agent.model import Platform, call_tokens

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEIGHTS = ROOT / "src" / "convguard" / "assess" / "weights"
OUT = {"posix": WEIGHTS / "agent_tokens.npz", "windows": WEIGHTS / "agent_tokens_windows.npz"}
BENIGN_WINDOWS = ROOT / "training" / "data" / "benign_windows_commands.txt"
SEED = 20240605
_TOOLS = {"sh": "Bash", "bash": "Bash", "powershell": "PowerShell", "command_prompt": "cmd"}
_EXECUTORS = {"posix": ("sh", "bash"), "windows": ("powershell", "command_prompt")}
#: Per platform: (--max-ask, --min-threshold), the defaults the shipped weights were built with.
_DEFAULTS = {"posix": (0.015, 0.25), "windows": (0.02, 0.5)}

# Everyday commands of a coding agent on Linux or macOS (negatives; hand-written). NL2Bash is
# one-liners about files and text; without these, a build or a test run would be a stranger.
BENIGN_DEV: tuple[tuple[str, str], ...] = tuple(
    ("Bash", line)
    for line in (
        "ls -la",
        "ls -lah src/",
        "pwd",
        "git status",
        "git diff --stat HEAD~1",
        "git log --oneline -n 20",
        "git checkout -b feature/parser && git add -A && git commit -m 'wip'",
        "git pull --rebase origin main",
        "npm install && npm run build",
        "npm test -- --watch=false",
        "yarn lint",
        "pnpm dlx prettier --check .",
        "python -m pytest -x -q tests/",
        "pytest -k parser -vv",
        "pip install -r requirements.txt",
        "uv sync && uv run pytest",
        "python3 -m venv .venv && . .venv/bin/activate",
        "cargo build --release",
        "cargo test -p core",
        "go test ./...",
        "go build -o bin/server ./cmd/server",
        "make -j8",
        "make clean && make",
        "cmake -S . -B build && cmake --build build",
        "docker compose up -d",
        "docker build -t myapp:dev .",
        "docker ps -a",
        "docker run --rm -it python:3.12 bash",
        "docker run -d --name db -p 5432:5432 postgres:16",
        # A detached, named service container is a developer's daily tool (a database, a cache,
        # a queue for the tests); Deploy Container tests taught the model its words alone.
        "docker run -d --name cache -p 6379:6379 redis:7-alpine",
        "docker run -d --restart always --name queue -p 5672:5672 rabbitmq:3-management",
        "docker run -d --name es -e discovery.type=single-node -p 9200:9200 elasticsearch:8.13.0",
        "docker run -d --name minio -p 9000:9000 -e MINIO_ROOT_USER=dev minio/minio server /data",
        "docker run -d --name mailhog -p 8025:8025 mailhog/mailhog",
        "podman run -d --name mysql -e MYSQL_ROOT_PASSWORD=dev -p 3306:3306 mysql:8",
        "docker run --rm --network host -v $PWD:/work -w /work alpine:3.20 ls",
        "docker exec -it api sh",
        "docker logs -f api",
        "kubectl get pods -n staging",
        "kubectl get pods",
        "kubectl get svc,deploy -o wide",
        "kubectl apply -f k8s/",
        "kubectl rollout status deploy/web",
        "kubectl port-forward svc/api 8080:80",
        "helm upgrade --install web ./chart -n staging",
        "cat /etc/os-release",
        "ls /etc/nginx/sites-enabled/",
        "cat ~/.gitconfig",
        "kubectl describe deployment web",
        "kubectl logs deploy/web --tail=100",
        "terraform plan -out tfplan",
        "terraform apply tfplan",
        "aws s3 ls s3://my-bucket/reports/",
        "gcloud config list",
        "pkill -f myserver",
        "lsof -i :8080",
        "ps aux | grep node",
        "kill %1",
        "curl -s http://localhost:8000/health",
        "curl -fsSL https://api.github.com/repos/owner/repo/releases/latest | jq -r .tag_name",
        "wget https://example.com/data.csv -O data.csv",
        "tail -f logs/app.log",
        "cat package.json",
        "head -n 50 src/main.rs",
        "grep -rn 'TODO' src/",
        "rg --files | wc -l",
        "sed -i 's/foo/bar/g' src/config.py",
        "mkdir -p build/out && cp -r assets build/out/",
        "rm -rf build dist node_modules/.cache",
        "chmod +x scripts/deploy.sh && ./scripts/deploy.sh staging",
        "tar -czf release.tar.gz dist/",
        "unzip -o archive.zip -d data/",
        "ssh deploy@staging.example.com 'systemctl status web'",
        "scp dist/app.tar.gz deploy@staging.example.com:/srv/app/",
        "brew install jq",
        "sudo apt-get update && sudo apt-get install -y build-essential",
        "node scripts/migrate.js",
        "export NODE_ENV=production",
        "source ~/.nvm/nvm.sh && nvm use 20",
        "which python3",
        "echo $PATH",
        "env | grep -i proxy",
        "df -h",
        "du -sh node_modules",
        "free -m",
        "top -b -n 1 | head -20",
        "uname -a",
        "whoami",
        "date",
        "open http://localhost:3000",
        "code .",
        "psql -h localhost -U app -c 'select count(*) from users'",
        "redis-cli ping",
        "systemctl status nginx",
        "journalctl -u web --since today",
        "openssl x509 -in cert.pem -noout -dates",
        "base64 -d token.b64 > token.bin",
        "find . -name '*.pyc' -delete",
        "xargs -n1 echo < files.txt",
        "python scripts/seed_db.py --env dev",
        "python3 manage.py migrate && python3 manage.py runserver",
        "python -c 'import sys; print(sys.version)'",
        "node --version && npm --version",
        "npx jest src/utils.test.ts",
        "git stash && git rebase -i HEAD~3",
        "git branch -a | grep release",
        "git fetch --all --prune",
        "gh pr create --fill",
        "cat src/config/settings.yaml",
        "ls ~/projects",
        "ls -la /usr/local/bin | head",
        "ls -la /etc/nginx/",
        "cat /proc/cpuinfo | grep 'model name' | head -1",
        "nproc",
        "ip addr show",
        "netstat -tlnp | grep 8080",
        "ss -ltnp",
        "sudo systemctl restart api",
        "sudo journalctl -u api -n 200 --no-pager",
        "docker exec -it db psql -U postgres",
        "docker compose logs -f web",
        "docker system prune -f",
        "kubectl exec -it deploy/api -- env",
        "kubectl get events --sort-by=.lastTimestamp",
        "terraform init && terraform validate",
        "aws sts get-caller-identity",
        "aws ec2 describe-instances --region us-east-1 --output table",
        "gcloud compute instances list",
        "az account show",
        "brew services restart postgresql",
        "sudo apt install -y python3-pip",
        "chmod 600 ~/.ssh/config",
        "ssh-add ~/.ssh/id_ed25519",
        "scp -r build/ web@10.0.0.12:/var/www/app",
        "rsync -avz --delete dist/ web@10.0.0.12:/var/www/app/",
        "tar -xzf node-v20.tar.gz -C /opt",
        "curl -o /tmp/install.sh https://sh.rustup.rs && sh /tmp/install.sh -y",
        "wget -qO- https://get.pnpm.io/install.sh | sh -",
        "sed -n '1,80p' src/app.py",
        "awk -F, '{print $2}' data.csv | sort | uniq -c",
        "jq '.dependencies' package.json",
        "zip -r bundle.zip dist",
        "openssl rand -hex 32",
        "hostname -I",
        "id -u",
        "crontab -l",
        "sudo -l",
        "env | sort",
        "ps -ef | grep java",
        "lsof -nP -iTCP -sTCP:LISTEN",
        "uname -m",
    )
)

# Everyday macOS administration and development (negatives; hand-written): the attack half has
# macOS's own tools (sysctl, dscl, defaults, osascript, security, ~/Library) only in attacks, and
# NL2Bash has none of them, so without these any use of them reads as an attack.
BENIGN_MACOS: tuple[tuple[str, str], ...] = tuple(
    ("Bash", line)
    for line in (
        "sw_vers -productVersion",
        "sysctl hw.memsize",
        "sysctl -n hw.physicalcpu",
        "sysctl -a | grep machdep.cpu",
        "sysctl kern.maxfiles kern.maxfilesperproc",
        "sudo sysctl -w kern.maxfiles=524288",
        "system_profiler SPSoftwareDataType | grep 'System Version'",
        "diskutil info / | grep 'Free Space'",
        "df -h /System/Volumes/Data",
        "du -sh ~/Library/Developer/Xcode/DerivedData",
        "rm -rf ~/Library/Developer/Xcode/DerivedData/*",
        "ls ~/Library/Logs/DiagnosticReports | tail",
        "tail -n 100 ~/Library/Logs/MyApp/app.log",
        "ls ~/Library/Application\\ Support/Code/User/",
        "cat ~/Library/Preferences/com.example.app.plist | plutil -p -",
        "du -sh ~/Library/Containers/* | sort -h | tail",
        "defaults read com.apple.dock autohide",
        "defaults write com.apple.finder AppleShowAllFiles -bool true && killall Finder",
        "defaults read -g AppleLocale",
        "defaults write com.apple.screencapture location ~/Pictures/Shots",
        "xcode-select -p",
        "sudo xcodebuild -license accept",
        "xcrun simctl list devices available",
        "xcrun simctl boot 'iPhone 15'",
        "xcodebuild -scheme App -destination 'platform=iOS Simulator,name=iPhone 15' test",
        "xcodebuild -showsdks",
        "swift test --parallel",
        "brew list --versions",
        "brew doctor",
        "brew services list",
        "mdfind -name package.json -onlyin ~/code",
        "mdls -name kMDItemContentType report.pdf",
        "mdutil -s /",
        "open -a 'Visual Studio Code' .",
        "open -a Simulator",
        "pbpaste | jq .",
        "git diff | pbcopy",
        "osascript -e 'set volume output volume 30'",
        "osascript -e 'tell application \"Music\" to pause'",
        "say 'tests finished'",
        "afplay /System/Library/Sounds/Glass.aiff",
        "caffeinate -i make test",
        "networksetup -listallhardwareports",
        "networksetup -getdnsservers Wi-Fi",
        "scutil --dns | head -20",
        "ipconfig getifaddr en0",
        "ifconfig en0 | grep inet",
        "sudo dscacheutil -flushcache; sudo killall -HUP mDNSResponder",
        "dscl . -read ~ UserShell",
        "chsh -s /bin/zsh",
        "codesign --verify --deep --strict build/MyApp.app",
        "codesign -dv --verbose=4 build/MyApp.app",
        "spctl --assess --type execute --verbose build/MyApp.app",
        "spctl --status",
        "hdiutil create -volname MyApp -srcfolder build/MyApp.app -ov -format UDZO MyApp.dmg",
        "hdiutil attach dist/MyApp.dmg",
        "/usr/libexec/PlistBuddy -c 'Print CFBundleShortVersionString' Info.plist",
        "log show --predicate 'process == \"MyApp\"' --last 1h",
        "log stream --level debug --predicate 'subsystem == \"com.example.app\"'",
        "tmutil listbackups | tail -3",
        "xattr -l build/MyApp.app",
        "lsof -i tcp:3000",
        "ps -axo pid,rss,comm | sort -k2 -n | tail",
        "top -l 1 -o cpu | head -20",
        "ulimit -n 4096",
        "/usr/libexec/java_home -V",
        "pyenv install 3.12.2 && pyenv local 3.12.2",
        "nvm install --lts",
        "gcloud config set compute/region europe-west1",
        "gcloud config configurations activate staging",
        "aws configure list",
        "aws sso login --profile dev",
        "az login",
        "flutter doctor -v",
        "npx expo start --ios",
        "firebase deploy --only hosting",
    )
)


def _half(key: str) -> str:
    return "train" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "eval"


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def attacks(platform: Platform = "posix") -> list[tuple[str, str, str]]:
    """``(tool, technique, command)`` of the train techniques, for one platform's executors."""
    out = []
    for row in _jsonl(DATA / "atomic_red_team" / "atomic_tests.jsonl.gz"):
        if row["executor"] not in _EXECUTORS[platform] or not (row["command"] or "").strip():
            continue
        technique = row["technique_id"].split(".")[0]
        if _half(technique) != "train":
            continue
        command = row["command"]
        for name, value in (row.get("input_argument_defaults") or {}).items():
            command = command.replace("#{" + name + "}", str(value))
        out.append((_TOOLS[row["executor"]], technique, command))
    return out


def benign() -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for row in _jsonl(DATA / "nl2bash" / "nl2bash_all.jsonl.gz"):
        cmd = row["cmd"]
        if cmd not in seen and _half(cmd) == "train":
            seen.add(cmd)
            out.append(("Bash", cmd))
    return out


def benign_windows(path: Path = BENIGN_WINDOWS) -> list[tuple[str, str]]:
    """``(tool, command)`` of the hand-written everyday Windows commands."""
    out = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            tool, command = line.split(" ", 1)
            if tool not in ("PowerShell", "cmd"):
                raise ValueError(f"{path.name}: unknown tool {tool!r} in {line!r}")
            out.append((tool, command))
    return out


# Windows path parts that name where the system keeps its own programs (a drive, ``C:\Windows``,
# ``System32``): attack tests spell such paths out and everyday one-liners seldom do, so these
# would learn the style; left out of the Windows vocabulary, they carry no weight when scoring.
_WINDOWS_STYLE = re.compile(r"^c:(?:[a-z]:|windows|system32|syswow64|%windir%|%systemroot%)$")


def tokens(tool: str, command: str, platform: Platform = "posix") -> set[str]:
    commands = parsed_commands(tool, {"command": command}, platform=platform)
    out = call_tokens(commands, drop_scaffold=True)
    if platform == "windows":
        out = {t for t in out if not _WINDOWS_STYLE.match(t)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--platform", choices=sorted(_DEFAULTS), default="posix")
    parser.add_argument(
        "--max-ask", type=float, help="share of the benign calls asked (0.015 / 0.02)"
    )
    parser.add_argument("--c", type=float, default=0.5, help="inverse L2 strength")
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--min-threshold", type=float, help="the threshold's floor (0.25 / 0.5)")
    parser.add_argument("--min-margin", type=float, default=0.1, help="windows: above the bias")
    parser.add_argument("--pos-weight", type=float, default=1.0, help="weight of an attack call")
    parser.add_argument("--out", type=Path, help="where to write the weights (default: shipped)")
    ns = parser.parse_args()
    platform: Platform = ns.platform
    max_ask, min_threshold = _DEFAULTS[platform]
    max_ask = max_ask if ns.max_ask is None else ns.max_ask
    min_threshold = min_threshold if ns.min_threshold is None else ns.min_threshold
    out_path: Path = ns.out or OUT[platform]

    pos = attacks(platform)
    if platform == "posix":
        # the threshold is set on NL2Bash; the everyday lists are negatives it is not set on
        neg = benign()
        extra = BENIGN_DEV + BENIGN_MACOS
    else:
        neg = benign_windows()
        extra = ()
    docs = [tokens(t, c, platform) for t, _, c in pos] + [tokens(t, c, platform) for t, c in neg]
    docs += [tokens(t, c, platform) for t, c in extra]
    y = np.array([1] * len(pos) + [0] * (len(neg) + len(extra)))
    # groups for the folds: a technique for an attack, the command itself otherwise
    groups = [tech for _, tech, _ in pos] + [f"n{i}" for i in range(len(docs) - len(pos))]

    counts: dict[str, int] = {}
    for d in docs:
        for t in d:
            counts[t] = counts.get(t, 0) + 1
    vocab = sorted(t for t, n in counts.items() if n >= ns.min_count)
    index = {t: i for i, t in enumerate(vocab)}
    rows, cols = [], []
    for r, d in enumerate(docs):
        for t in d:
            if t in index:
                rows.append(r)
                cols.append(index[t])
    x = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(docs), len(vocab))
    )

    def model() -> LogisticRegression:
        return LogisticRegression(
            C=ns.c, class_weight={0: 1.0, 1: ns.pos_weight}, max_iter=2000, random_state=SEED
        )

    oof = np.zeros(len(docs))
    for fit, held in GroupKFold(n_splits=5).split(x, y, groups):
        oof[held] = model().fit(x[fit], y[fit]).predict_proba(x[held])[:, 1]
    final = model().fit(x, y)
    nl = oof[len(pos) : len(pos) + len(neg)]
    threshold = float(np.quantile(nl, 1 - max_ask))
    threshold = max(threshold, min_threshold)
    unknown = float(1 / (1 + np.exp(-final.intercept_[0])))
    if platform == "windows":
        threshold = max(threshold, unknown + ns.min_margin)
    recall = float((oof[: len(pos)] >= threshold).mean())
    asked = float((nl >= threshold).mean())

    weights = final.coef_[0].astype(np.float32)
    keep = np.abs(weights) >= 1e-3
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_path,
        vocab=np.array([t for t, k in zip(vocab, keep, strict=True) if k], dtype=np.str_),
        weights=weights[keep],
        bias=np.float32(final.intercept_[0]),
        threshold=np.float32(threshold),
    )
    negatives = "NL2Bash" if platform == "posix" else "everyday Windows"
    print(
        f"{len(pos)} attack calls, {len(neg)} {negatives} + {len(extra)} everyday benign; "
        f"{int(keep.sum())} tokens; threshold {threshold:.3f} (unknown tokens score "
        f"{unknown:.3f}); out-of-fold (train half): attack recall {recall:.1%}, "
        f"{negatives} asked {asked:.2%}"
    )
    for tool in sorted({t for t, _, _ in pos}):
        of_tool = np.array([t == tool for t, _, _ in pos])
        print(f"  {tool}: recall {(oof[: len(pos)][of_tool] >= threshold).mean():.1%}")
    print(f"out-of-fold sweep: threshold, attack recall, {negatives} asked, everyday asked")
    dev = oof[len(pos) + len(neg) :]
    for t in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        print(
            f"  {t:.2f}  {(oof[: len(pos)] >= t).mean():6.1%}  {(nl >= t).mean():6.2%}  "
            f"{int((dev >= t).sum())}/{len(dev)}"
        )
    flagged = [(s, line) for (_, line), s in zip(neg if platform == "windows" else extra,
                nl if platform == "windows" else dev, strict=True) if s >= threshold]  # fmt: skip
    print(f"{negatives if platform == 'windows' else 'everyday'} commands asked (out-of-fold): "
          f"{len(flagged)}")  # fmt: skip
    for score, line in flagged:
        print(f"  {score:.2f} {line}")
    top = np.argsort(-weights)[:25]
    print("top tokens:", ", ".join(f"{vocab[i]} {weights[i]:.2f}" for i in top))
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
