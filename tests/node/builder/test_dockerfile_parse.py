"""Dockerfile syntax: directives, comments, continuations, heredocs, forms, flags, instructions, errors."""

from __future__ import annotations

import textwrap

import pytest

from node.builder.dockerfile import (
    DockerfileError,
    Heredoc,
    Instruction,
    parse_dockerfile,
    parse_duration,
    parse_healthcheck,
    parse_mount,
)
from node.errors import InvalidArgument, NodeError


def parse(text: str, **kwargs: object):
    return parse_dockerfile(textwrap.dedent(text).lstrip("\n"), **kwargs)  # type: ignore[arg-type]


def only(text: str) -> Instruction:
    """The single instruction after the FROM line."""
    (instruction,) = parse("FROM busybox\n" + textwrap.dedent(text).lstrip("\n")).stages[0].instructions
    return instruction


def error_of(text: str, **kwargs: object) -> str:
    with pytest.raises(DockerfileError) as info:
        parse(text, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------------- directives


def test_syntax_directive_is_accepted_and_ignored() -> None:
    df = parse("""
        # syntax=docker/dockerfile:1.7
        FROM busybox
    """)
    assert df.directives == {"syntax": "docker/dockerfile:1.7"}
    assert df.escape == "\\"


def test_backtick_escape_directive_changes_continuation_and_escapes() -> None:
    df = parse("""
        # escape=`
        FROM busybox
        RUN dir c:\\ `
            /w
        WORKDIR c:\\windows
    """)
    run, workdir = df.stages[0].instructions
    assert df.escape == "`"
    assert run.args == ("dir c:\\     /w",)
    assert workdir.args == ("c:\\windows",)


def test_directives_are_case_insensitive_and_tolerate_spaces() -> None:
    assert parse("#  ESCAPE =  `\nFROM busybox\n").escape == "`"


def test_directive_after_a_comment_is_only_a_comment() -> None:
    df = parse("""
        # a comment
        # escape=`
        FROM busybox
    """)
    assert df.escape == "\\"
    assert df.directives == {}


def test_directive_after_blank_line_is_only_a_comment() -> None:
    assert parse_dockerfile("\n# escape=`\nFROM busybox\n").escape == "\\"


def test_unknown_directive_is_ignored_but_does_not_end_directives() -> None:
    assert parse("# foo=bar\n# escape=`\nFROM busybox\n").escape == "`"


def test_bad_escape_token_is_an_error() -> None:
    assert error_of("# escape=x\nFROM busybox\n") == "Dockerfile:1: invalid escape token 'x' does not match ` or \\"


def test_duplicate_escape_directive_is_an_error() -> None:
    assert error_of("# escape=`\n# escape=\\\nFROM busybox\n") == (
        "Dockerfile:2: only one escape parser directive can be used"
    )


# ------------------------------------------------------------------------ comments, continuations


def test_comments_and_blank_lines_are_skipped_and_line_numbers_kept() -> None:
    df = parse("""
        # header

        FROM busybox
          # indented comment
        RUN echo hi # not a comment
    """)
    (run,) = df.stages[0].instructions
    assert run.lineno == 5
    assert run.args == ("echo hi # not a comment",)
    assert df.stages[0].from_instruction.lineno == 3


def test_continuation_joins_lines_without_adding_spaces() -> None:
    run = only("""
        RUN apt-get install \\
              curl \\
            git
    """)
    assert run.args == ("apt-get install       curl     git",)
    assert (run.lineno, run.end_lineno) == (2, 4)
    assert run.original_line_text == "RUN apt-get install \\\n      curl \\\n    git"


def test_continuation_allows_trailing_whitespace_after_escape() -> None:
    assert only("RUN a \\  \t\n b\n").args == ("a  b",)


def test_comment_and_empty_lines_inside_a_continuation_are_dropped() -> None:
    run = only("""
        RUN echo a \\
        # a comment in the middle
            && echo b \\

            && echo c
    """)
    assert run.args == ("echo a     && echo b     && echo c",)
    assert run.end_lineno == 6


def test_continuation_at_end_of_file_is_accepted() -> None:
    assert only("RUN echo a \\\n").args == ("echo a",)


def test_keywords_are_case_insensitive() -> None:
    df = parse("from busybox as Build\nrun echo\n")
    assert df.stages[0].name == "build"
    assert df.stages[0].instructions[0].keyword == "RUN"


def test_crlf_line_endings_and_bom() -> None:
    df = parse_dockerfile("\ufeffFROM busybox\r\nRUN echo \\\r\n  hi\r\n")
    assert df.stages[0].instructions[0].args == ("echo   hi",)


# --------------------------------------------------------------------------------------- heredocs


def test_run_heredoc() -> None:
    run = only("""
        RUN <<EOF
        apt-get update
        apt-get install -y curl
        EOF
        """)
    assert run.args == ("<<EOF",)
    assert run.heredocs == (Heredoc(name="EOF", content="apt-get update\napt-get install -y curl\n"),)
    assert (run.lineno, run.end_lineno) == (2, 5)


def test_heredoc_with_dash_strips_leading_tabs() -> None:
    run = only("RUN <<-EOT\n\tindented\n\t\tmore\n  spaces\n\tEOT\n")
    assert run.heredocs[0].content == "indented\nmore\n  spaces\n"
    assert run.heredocs[0].strip_tabs


def test_quoted_heredoc_delimiter_disables_expansion() -> None:
    assert only("RUN <<'EOF'\necho $HOME\nEOF\n").heredocs[0].expand is False
    assert only('RUN <<"EOF"\necho $HOME\nEOF\n').heredocs[0].expand is False
    assert only("RUN <<EOF\necho $HOME\nEOF\n").heredocs[0].expand is True


def test_copy_heredoc_to_path() -> None:
    copy = only("COPY <<EOF /etc/motd\nhello\nEOF\n")
    assert copy.args == ("<<EOF", "/etc/motd")
    assert copy.heredocs[0].content == "hello\n"


def test_several_heredocs_and_file_descriptor() -> None:
    run = only("RUN python3 <<PY 3<<DATA\nprint(1)\nPY\nx\nDATA\n")
    assert [(d.name, d.content, d.file_descriptor) for d in run.heredocs] == [
        ("PY", "print(1)\n", 0),
        ("DATA", "x\n", 3),
    ]


def test_instruction_after_heredoc_is_parsed_with_its_own_line_number() -> None:
    df = parse("FROM busybox\nRUN <<EOF\n# not a comment\nEOF\nRUN echo after\n")
    first, second = df.stages[0].instructions
    assert first.heredocs[0].content == "# not a comment\n"
    assert second.lineno == 5


def test_here_string_is_not_a_heredoc() -> None:
    assert only("RUN cat <<< hello\n").heredocs == ()


def test_unterminated_heredoc_is_an_error() -> None:
    assert error_of("FROM busybox\nRUN <<EOF\necho\n") == "Dockerfile:2: unterminated heredoc EOF"


# ------------------------------------------------------------------------------ exec / shell form


@pytest.mark.parametrize("keyword", ["RUN", "CMD", "ENTRYPOINT"])
def test_json_form_is_exec_form(keyword: str) -> None:
    instruction = only(f'{keyword} ["/bin/echo", "a b", "c"]')
    assert instruction.json_form
    assert instruction.args == ("/bin/echo", "a b", "c")


@pytest.mark.parametrize("keyword", ["RUN", "CMD", "ENTRYPOINT"])
def test_shell_form_is_one_string(keyword: str) -> None:
    instruction = only(f"{keyword} echo   $HOME && ls")
    assert not instruction.json_form
    assert instruction.args == ("echo   $HOME && ls",)


def test_invalid_json_falls_back_to_shell_form() -> None:
    cmd = only("CMD ['single', 'quotes']")
    assert not cmd.json_form
    assert cmd.args == ("['single', 'quotes']",)


def test_empty_json_list_is_allowed() -> None:
    cmd = only("CMD []")
    assert cmd.json_form and cmd.args == ()


def test_shell_requires_json() -> None:
    assert only('SHELL ["/bin/bash", "-c"]').args == ("/bin/bash", "-c")
    assert error_of("FROM busybox\nSHELL /bin/bash -c\n") == (
        "Dockerfile:2: SHELL requires the arguments to be in JSON form"
    )


# ------------------------------------------------------------------------------------------ flags


def test_copy_flags() -> None:
    copy = only("COPY --from=build --chown=app:app --chmod=0755 --link a b /dst/")
    assert copy.flag("from") == "build"
    assert copy.flag("chown") == "app:app"
    assert copy.flag("chmod") == "0755"
    assert copy.flag("link") == "true"
    assert copy.args == ("a", "b", "/dst/")


def test_quoted_flag_value_and_double_dash_end_of_flags() -> None:
    copy = only('COPY --chown="1000:1000" -- --weird-name /dst')
    assert copy.flag("chown") == "1000:1000"
    assert copy.args == ("--weird-name", "/dst")


def test_run_mount_flags_repeat() -> None:
    run = only(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked "
        "--mount=type=secret,id=token,target=/run/token,required=true --network=none pip install x"
    )
    assert run.flag_values("mount") == (
        "type=cache,target=/root/.cache,id=pip,sharing=locked",
        "type=secret,id=token,target=/run/token,required=true",
    )
    assert run.flag("network") == "none"
    assert run.args == ("pip install x",)


def test_from_platform_flag() -> None:
    df = parse("FROM --platform=linux/amd64 busybox AS b\n")
    assert df.stages[0].platform == "linux/amd64"
    assert df.stages[0].base == "busybox"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("COPY --form=x a b", "Unknown flag: form"),
        ("WORKDIR --x=1 /a", "Unknown flag: x"),
        ("COPY --from a b", "Missing a value on flag: --from"),
        ("COPY --from=a --from=b a b", "Duplicate flag specified: from"),
        ("COPY --link=maybe a b", "expecting boolean value for flag link, not: maybe"),
        ("RUN --network=bridge echo", "unsupported network mode: bridge"),
        ("COPY --chmod=abc a b", "invalid chmod parameter: abc"),
    ],
)
def test_flag_errors(line: str, message: str) -> None:
    assert error_of(f"FROM busybox\n{line}\n") == f"Dockerfile:2: {message}"


def test_link_false() -> None:
    assert only("COPY --link=false a b").flag("link") == "false"


# ------------------------------------------------------------------------------------- instructions


def test_from_forms() -> None:
    df = parse("""
        FROM scratch
        FROM busybox:1.36 AS Tools
        FROM tools
        FROM debian@sha256:abcd as final
    """)
    assert [(s.index, s.name, s.base, s.base_is_stage) for s in df.stages] == [
        (0, None, "scratch", False),
        (1, "tools", "busybox:1.36", False),
        (2, None, "tools", True),
        (3, "final", "debian@sha256:abcd", False),
    ]
    assert df.stages[0].is_scratch
    assert df.stages[2].base_stage_index == 1


def test_from_same_name_as_image_is_an_image() -> None:
    stage = parse("FROM node AS node\n").stages[0]
    assert stage.base == "node" and not stage.base_is_stage


def test_copy_and_add_args() -> None:
    assert only("COPY a b /dst/").args == ("a", "b", "/dst/")
    assert only('COPY ["a b", "/d e/"]').args == ("a b", "/d e/")
    assert only("ADD --chown=1 --link src.tar.gz /opt/").args == ("src.tar.gz", "/opt/")


def test_env_forms() -> None:
    assert only("ENV PATH /usr/local/bin:$PATH").pairs() == [("PATH", "/usr/local/bin:$PATH")]
    assert only("ENV MSG hello world").pairs() == [("MSG", "hello world")]
    assert only('ENV a=1 b="v 2" c=x\\ y').pairs() == [("a", "1"), ("b", '"v 2"'), ("c", "x\\ y")]


def test_label_pairs() -> None:
    assert only('LABEL org.opencontainers.image.title="My app" version=1').pairs() == [
        ("org.opencontainers.image.title", '"My app"'),
        ("version", "1"),
    ]


def test_arg_forms() -> None:
    assert only("ARG VERSION").args == ("VERSION",)
    assert only('ARG a=1 b="x y" c').args == ("a=1", 'b="x y"', "c")


def test_single_argument_instructions() -> None:
    assert only("WORKDIR /app/src").args == ("/app/src",)
    assert only("USER app:app").args == ("app:app",)
    assert only("STOPSIGNAL SIGQUIT").args == ("SIGQUIT",)
    assert only("MAINTAINER Jane Doe <jane@example.com>").args == ("Jane Doe <jane@example.com>",)


def test_expose_and_volume() -> None:
    assert only("EXPOSE 80 443/tcp 53/udp").args == ("80", "443/tcp", "53/udp")
    assert only("VOLUME /data /logs").args == ("/data", "/logs")
    volume = only('VOLUME ["/data"]')
    assert volume.args == ("/data",) and volume.json_form


def test_healthcheck_cmd_with_options() -> None:
    hc = only('HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --retries=3 CMD ["curl", "-f", "x"]')
    assert hc.args == ("CMD", "curl", "-f", "x")
    assert parse_healthcheck(hc).test == ("CMD", "curl", "-f", "x")
    spec = parse_healthcheck(hc)
    assert (spec.interval, spec.timeout, spec.start_period, spec.retries) == (30.0, 3.0, 60.0, 3)


def test_healthcheck_shell_form_and_none() -> None:
    assert parse_healthcheck(only("HEALTHCHECK CMD curl -f http://x || exit 1")).test == (
        "CMD-SHELL",
        "curl -f http://x || exit 1",
    )
    none = only("HEALTHCHECK NONE")
    assert none.args == ("NONE",)
    assert parse_healthcheck(none).test == ("NONE",)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK NONE now", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK RUN x", "unknown type 'RUN' in HEALTHCHECK (try CMD)"),
        ("HEALTHCHECK CMD", "missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK --interval=5 CMD x", "--interval: time: invalid duration '5'"),
        ("HEALTHCHECK --timeout=-1s CMD x", "--timeout cannot be negative"),
        ("HEALTHCHECK --interval=10us CMD x", "--interval cannot be less than 1ms"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative"),
        ("HEALTHCHECK --retries=two CMD x", "--retries must be an integer, not 'two'"),
    ],
)
def test_healthcheck_errors(line: str, message: str) -> None:
    assert error_of(f"FROM busybox\n{line}\n") == f"Dockerfile:2: {message}"


def test_onbuild_keeps_the_trigger_parsed() -> None:
    onbuild = only("ONBUILD COPY --chown=1 . /app")
    assert onbuild.args == ("COPY --chown=1 . /app",)
    assert onbuild.trigger is not None
    assert (onbuild.trigger.keyword, onbuild.trigger.args, onbuild.trigger.flag("chown")) == (
        "COPY",
        (".", "/app"),
        "1",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM busybox", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD RUNN x", "unknown instruction: RUNN"),
    ],
)
def test_onbuild_errors(line: str, message: str) -> None:
    assert error_of(f"FROM busybox\n{line}\n") == f"Dockerfile:2: {message}"


def test_global_args_before_from() -> None:
    df = parse("ARG A=1\nARG B\nFROM busybox\n")
    assert [i.args for i in df.global_args] == [("A=1",), ("B",)]


# -------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nRUN x\n\n\n\n\nRUNN echo\n", "Dockerfile:7: unknown instruction: RUNN"),
        ("# c\n\nFROM\n", "Dockerfile:3: FROM requires an argument"),
        ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a IS b\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS 1st\n", "Dockerfile:1: invalid name for build stage: '1st', name can't start with a "
         "number or contain symbols"),
        ("FROM a AS x\nFROM b AS X\n", "Dockerfile:2: duplicate stage name 'x'"),
        ("FROM a AS scratch\n", "Dockerfile:1: 'scratch' is reserved and cannot be used as a stage name"),
        ("FROM busybox\nADD https://example.com/x.tgz /x\n",
         "Dockerfile:2: ADD from a URL is not supported: no network fetch is done here"),
        ("FROM busybox\nADD git@github.com:a/b.git /x\n",
         "Dockerfile:2: ADD from a URL is not supported: no network fetch is done here"),
        ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least two arguments, but only one "
         "was provided. Destination could not be determined."),
        ("FROM busybox\nENV ALONE\n", "Dockerfile:2: ENV must have two arguments"),
        ("FROM busybox\nENV a=1 b\n", "Dockerfile:2: syntax error - can't find = in 'b'. Must be of the "
         "form: name=value"),
        ("FROM busybox\nENV =1\n", "Dockerfile:2: ENV names can not be blank"),
        ("FROM busybox\nWORKDIR\n", "Dockerfile:2: WORKDIR requires an argument"),
        ("RUN echo\nFROM busybox\n", "Dockerfile:1: RUN before the first FROM: no build stage in current context"),
        ("ARG X\n", "Dockerfile: no FROM instruction: a Dockerfile must have at least one stage"),
        ("# only a comment\n\n", "Dockerfile: file with no instructions"),
        ("ARG B=\nFROM $B\n", "Dockerfile:2: base name ($B) should not be blank"),
    ],
)
def test_errors_name_file_and_line(text: str, message: str) -> None:
    assert error_of(text) == message


def test_errors_use_the_given_file_name_and_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_dockerfile("FROM a\nfoo bar\n", filename="build/Dockerfile.dev")
    assert str(info.value) == "build/Dockerfile.dev:2: unknown instruction: foo"
    assert isinstance(info.value, NodeError) and info.value.status == 400
    assert (info.value.lineno, info.value.reason) == (2, "unknown instruction: foo")  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ typed options


def test_parse_mount_cache() -> None:
    mount = parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000")
    assert (mount.type, mount.target, mount.id, mount.sharing, mount.mode, mount.uid, mount.readonly) == (
        "cache", "/root/.cache", "pip", "locked", 0o755, 1000, False,
    )  # fmt: skip


def test_parse_mount_secret_defaults() -> None:
    by_id = parse_mount("type=secret,id=token")
    assert (by_id.target, by_id.required) == ("/run/secrets/token", False)
    by_target = parse_mount("type=secret,target=/run/secrets/npmrc,required=true")
    assert (by_target.id, by_target.required) == ("npmrc", True)


def test_parse_mount_bind_defaults_read_only_and_accepts_from() -> None:
    mount = parse_mount("target=/src,from=build,source=/out")
    assert (mount.type, mount.readonly, mount.from_ref, mount.source) == ("bind", True, "build", "/out")
    assert parse_mount("type=bind,target=/src,rw").readonly is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=nfs,target=/x", "unsupported mount type 'nfs'"),
        ("type=cache", "mount type cache requires a target"),
        ("type=cache,target=/x,sharing=all", "unsupported sharing value 'all'"),
        ("type=cache,target=/x,color=red", "unexpected key 'color' in 'color=red'"),
        ("type=secret", "secret mount requires an id or a target"),
        ("type=cache,target=/x,uid=me", "invalid value for uid: 'me'"),
    ],
)
def test_parse_mount_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        parse_mount(value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("500ms", 0.5), ("0", 0.0), ("2m", 120.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
