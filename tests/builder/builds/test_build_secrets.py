"""build --secret / --ssh with RUN --mount=type=secret|ssh: what a step sees, and that a secret reaches no
layer, blob, cache key, history or `save` output. ssh runs against a real ssh-agent (openssh-client); the
step checks it with the host's own ssh-add, its libraries bind-mounted from the context."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from builder_support import make_context

SECRET = b"s3cr3t-\x00-value-7d1f0c"


def _every_file_holds(root: Path, needle: bytes) -> list[str]:
    """Files under root whose bytes, or gunzipped bytes, contain needle."""
    hits = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            data = Path(p).read_bytes()
            if data[:2] == b"\x1f\x8b":
                try:
                    data += gzip.decompress(data)
                except (OSError, EOFError):
                    pass
            if needle in data:
                hits.append(p)
    return hits


def test_secret_reaches_the_step_only(pydock, tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_bytes(SECRET)
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
RUN --mount=type=secret,id=tok cp /run/secrets/tok /copied && stat -c '%a %u:%g %s' /run/secrets/tok > /seen
RUN --mount=type=secret,id=tok,target=etc/app.key,mode=0440,uid=7,gid=8 stat -c '%a %u:%g' /etc/app.key > /seen2
RUN --mount=type=secret,id=word,env=WORD test "$WORD" = "$(echo c2VjcmV0LXdvcmQ= | base64 -d)" && test ! -e /run/secrets/word && echo env > /seen3
RUN --mount=type=secret,id=absent ls /run/secrets > /seen4 2>&1 || echo no-mount > /seen4
""")
    (tmp_path / "word").write_text("secret-word")
    proc = pydock.build(ctx, "-t", "sec", "--secret", f"id=tok,src={secret_file}",
                        "--secret", f"id=word,src={tmp_path}/word")
    out = pydock("run", "--rm", "sec", "cat", "/seen", "/seen2", "/seen3", "/seen4", check=True).stdout
    assert out == f"400 0:0 {len(SECRET)}\n440 7:8\nenv\nno-mount\n"
    assert pydock("run", "--rm", "sec", "cat", "/copied", check=True).stdout == SECRET.decode()
    for path in ("/run", "/etc/app.key"):
        assert pydock("run", "--rm", "sec", "test", "!", "-e", path).returncode == 0, path
    assert "s3cr3t" not in proc.stdout
    # the search below finds the secret where a step copied it (and so can fail in the next test)
    assert _every_file_holds(pydock.root, SECRET)


def test_secret_is_in_no_store_file_cache_key_or_history(pydock, tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_bytes(SECRET.replace(b"\x00", b"-"))  # an env var holds no NUL
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
RUN --mount=type=secret,id=tok,env=TOK,target=/run/secrets/tok wc -c < /run/secrets/tok > /size && echo "${#TOK}" >> /size
""")
    pydock.build(ctx, "-t", "sec", "--secret", f"id=tok,src={secret_file}")
    assert pydock("run", "--rm", "sec", "cat", "/size", check=True).stdout.split() == [str(len(SECRET))] * 2
    history = pydock("history", "--no-trunc", "sec", check=True).stdout
    assert "RUN" in history and "s3cr3t" not in history
    pydock("save", "-o", tmp_path / "saved.tar", "sec", check=True)
    assert _every_file_holds(pydock.root, b"s3cr3t-") == []
    assert _every_file_holds(tmp_path / "saved.tar", b"s3cr3t-") == []
    # the cache key names the mount, not the content: another value of the secret is a cache hit
    secret_file.write_bytes(b"another value")
    again = pydock.build(ctx, "-t", "sec2", "--secret", f"id=tok,src={secret_file}")
    assert "Using cache" in again.stdout


def test_secret_from_environment(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN --mount=type=secret,id=API_TOKEN,required "
                                         "cp /run/secrets/API_TOKEN /a\n"
                                         "RUN --mount=type=secret,id=other cp /run/secrets/other /b\n")
    # id=ID alone reads the env var named ID; env=VAR (or type=env,src=VAR) names another one
    pydock.build(ctx, "-t", "env", "--secret", "id=API_TOKEN", "--secret", "id=other,type=env,src=OTHER_VAR",
                 env={"API_TOKEN": "from-env", "OTHER_VAR": "from-other"})
    assert pydock("run", "--rm", "env", "cat", "/a", "/b", check=True).stdout == "from-envfrom-other"


def test_missing_required_secret_names_the_line_and_changes_nothing(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN true\n"
                                         "RUN --mount=type=secret,id=apikey,required=true cat /run/secrets/apikey\n")
    before = pydock.snapshot()
    proc = pydock.build(ctx, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("pydock: error: Dockerfile:3: RUN failed: secret 'apikey' is required by this "
                                   "step but the build was not given it (give it with --secret id=apikey,src=FILE)")
    assert pydock.snapshot() == before


@pytest.mark.parametrize("flag,message", [
    ("id=x,src=/nonexistent/file", "invalid --secret 'id=x,src=/nonexistent/file': cannot read /nonexistent/file: "
                                   "No such file or directory"),
    ("id=x,bogus=1", "invalid --secret 'id=x,bogus=1': unexpected 'bogus=1'"),
    ("id=x,env=PYDOCK_TEST_UNSET_VAR", "environment variable PYDOCK_TEST_UNSET_VAR is not set"),
    ("id=x,type=vault", "unsupported type 'vault'"),
])
def test_bad_secret_flags(pydock, tmp_path, flag, message):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n")
    proc = pydock.build(ctx, "--secret", flag, check=False)
    assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1


# -- ssh ------------------------------------------------------------------------------------------------

@pytest.fixture
def agent(tmp_path):
    """A real ssh-agent on a socket of its own, with one fresh key; yields (socket, key file, fingerprint line)."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("openssh-client is not installed (scripts/setup.sh installs it)")
    d = tmp_path / "agent"
    d.mkdir()
    sock = d / "s"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if sock.exists():
                break
            proc.wait(timeout=0.01) if proc.poll() is not None else subprocess.run(["sleep", "0.01"])
        key = d / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pydock-test-key", "-f", str(key)],
                       check=True)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], check=True, env=env, capture_output=True)
        listed = subprocess.run(["ssh-add", "-l"], check=True, env=env, capture_output=True, text=True).stdout
        yield sock, key, listed.strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _tools_context(root: Path, dockerfile: str) -> Path:
    """A context with the host's ssh-add and the libraries it loads, runnable in a busybox step as $ADD."""
    ctx = make_context(root, dockerfile)
    tools = ctx / "tools"
    tools.mkdir()
    shutil.copy2(shutil.which("ssh-add"), tools / "ssh-add")
    ldd = subprocess.run(["ldd", shutil.which("ssh-add")], check=True, capture_output=True, text=True).stdout
    for word in ldd.split():
        if word.startswith("/"):
            shutil.copy2(word, tools / os.path.basename(word))
    return ctx


ADD = "/t/ld-linux-x86-64.so.2 --library-path /t /t/ssh-add"


def test_ssh_agent_reaches_the_step(pydock, tmp_path, agent):
    sock, key, listed = agent
    if not Path("/lib64/ld-linux-x86-64.so.2").exists():
        pytest.skip("the step runs the host's ssh-add through the x86-64 loader")
    ctx = _tools_context(tmp_path / "ctx", f"""\
FROM busybox
RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh stat -c '%a %u' $SSH_AUTH_SOCK > /s1 && echo $SSH_AUTH_SOCK >> /s1 && {ADD} -l >> /s1
RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh,id=deploy,target=/agent,mode=0660,uid=9 stat -c '%a %u' /agent > /s2 && SSH_AUTH_SOCK=/agent {ADD} -l >> /s2
RUN --mount=type=ssh,id=absent ls /run/buildkit > /s3 2>&1 || echo none > /s3
""")
    pydock.build(ctx, "-t", "ssh", "--ssh", "default", "--ssh", f"deploy={key}",
                 env={"SSH_AUTH_SOCK": str(sock)})
    out = pydock("run", "--rm", "ssh", "cat", "/s1", "/s2", "/s3", check=True).stdout.splitlines()
    # default: $SSH_AUTH_SOCK relayed, at BuildKit's path; deploy=KEY: the key in an agent of the build's own
    assert out == ["600 0", "/run/buildkit/ssh_agent.0", listed, "660 9", listed, "none"]
    assert "SHA256:" in listed
    # nothing of the agents stays: no socket in the image, no ssh-agent process left running
    assert pydock("run", "--rm", "ssh", "test", "!", "-e", "/run").returncode == 0
    agents = subprocess.run(["pgrep", "-a", "ssh-agent"], capture_output=True, text=True).stdout
    assert "pydock-ssh-" not in agents


def test_ssh_errors(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN --mount=type=ssh,required true\n")
    proc = pydock.build(ctx, check=False)
    assert proc.returncode == 1
    assert "Dockerfile:2: RUN failed: ssh 'default' is required by this step but the build was not given it" \
        in proc.stderr
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.run([*pydock_cmd(pydock), "build", "--ssh", "default", str(ctx)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 1 and "SSH_AUTH_SOCK is not set" in proc.stderr
    proc = pydock.build(ctx, "--ssh", f"x={tmp_path}/nope", check=False)
    assert proc.returncode == 1 and "No such file or directory" in proc.stderr


def pydock_cmd(pydock) -> list[str]:
    from support import PYDOCK

    return [*PYDOCK, "--root", str(pydock.root)]
