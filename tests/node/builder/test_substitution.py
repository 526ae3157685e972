"""Variable substitution (Docker's shell lexer) and the ARG/ENV scope rules per stage."""

from __future__ import annotations

import textwrap

import pytest

from node.builder.dockerfile import (
    DockerfileError,
    ShellLex,
    global_arg_values,
    host_platform,
    parse_dockerfile,
    parse_triggers,
    platform_args,
    resolve_stage,
    unused_build_args,
)

ENV = {"A": "apple", "EMPTY": "", "SP": "a b"}


def expand(word: str, escape: str = "\\") -> str:
    return ShellLex(escape).expand_word(word, ENV.get)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "apple"),
        ("${A}", "apple"),
        ("${A}s", "apples"),
        ("$As", ""),
        ("$UNSET", ""),
        ("${UNSET:-pear}", "pear"),
        ("${EMPTY:-pear}", "pear"),
        ("${EMPTY-pear}", ""),
        ("${UNSET-pear}", "pear"),
        ("${A:-pear}", "apple"),
        ("${A:+set}", "set"),
        ("${EMPTY:+set}", ""),
        ("${EMPTY+set}", "set"),
        ("${UNSET:+set}", ""),
        ("${UNSET:-$A}", "apple"),
        ("${UNSET:-${A}-x}", "apple-x"),
        ("\\$A", "$A"),
        ("\\${A}", "${A}"),
        ("'$A'", "$A"),
        ('"$A"', "apple"),
        ('"\\$A"', "$A"),
        ('"a\\b"', "a\\b"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1", ""),
        ("100%", "100%"),
    ],
)
def test_expand_word(word: str, expected: str) -> None:
    assert expand(word) == expected


def test_backtick_escape() -> None:
    assert expand("`$A", escape="`") == "$A"
    assert expand("c:\\$A", escape="`") == "c:\\apple"


def test_expand_words_splits_expansions_but_not_quotes() -> None:
    lex = ShellLex()
    assert lex.expand_words('$SP "x y" z', ENV.get) == ["a", "b", "x y", "z"]


def test_heredoc_mode_keeps_quotes_and_expands_inside_them() -> None:
    lex = ShellLex(heredoc=True)
    assert lex.expand_word("it's '$A' \"$A\" \\$A \\n", ENV.get) == "it's 'apple' \"apple\" $A \\n"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${A", "syntax error: missing '}'"),
        ("${A:-x", "unexpected end of statement while looking for matching }"),
        ("${", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${A%%x}", "unsupported modifier (%) in substitution"),
        ("${UNSET:?must be set}", "UNSET: must be set"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
    ],
)
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        expand(word)
    assert str(info.value) == message


# ------------------------------------------------------------------------------------------ scopes


def parse(text: str, **build_args: str):
    return parse_dockerfile(textwrap.dedent(text).lstrip("\n"), build_args=build_args)


def steps(text: str, stage: int = 0, base_env: dict[str, str] | None = None, **build_args: str):
    return resolve_stage(parse(text, **build_args), stage, base_env=base_env or {})


def test_global_args_are_usable_in_from() -> None:
    text = """
        ARG IMAGE=alpine
        ARG TAG=3.19
        FROM ${IMAGE}:${TAG} AS a
        FROM ${IMAGE:-x}:$TAG-slim
    """
    assert [s.base for s in parse(text).stages] == ["alpine:3.19", "alpine:3.19-slim"]
    assert [s.base for s in parse(text, TAG="edge").stages] == ["alpine:edge", "alpine:edge-slim"]


def test_global_arg_default_may_use_an_earlier_global() -> None:
    df = parse("ARG A=1\nARG B=${A}0\nFROM busybox:$B\n")
    assert df.stages[0].base == "busybox:10"
    assert global_arg_values(df) == {"A": "1", "B": "10"}


def test_global_arg_is_not_visible_in_a_stage_until_redeclared() -> None:
    text = """
        ARG V=1.0
        FROM busybox
        WORKDIR /v$V
        ARG V
        WORKDIR /v$V
    """
    first, _, second = steps(text)
    assert first.args == ("/v",)
    assert second.args == ("/v1.0",)
    assert steps(text, V="2.0")[2].args == ("/v2.0",)


def test_arg_is_visible_only_from_its_line_on() -> None:
    text = """
        FROM busybox
        USER ${user:-some_user}
        ARG user
        USER $user
    """
    before, _, after = steps(text, user="what_user")
    assert before.args == ("some_user",)
    assert after.args == ("what_user",)


def test_build_arg_overrides_arg_default() -> None:
    text = "FROM busybox\nARG MODE=debug\nLABEL mode=$MODE\n"
    assert steps(text)[1].args == ("mode", "debug")
    assert steps(text, MODE="release")[1].args == ("mode", "release")


def test_arg_without_value_and_no_build_arg_is_unset() -> None:
    arg, label = steps("FROM busybox\nARG X\nLABEL x=${X:-none}\n")
    assert label.args == ("x", "none")
    assert label.build_args == ()


def test_env_overrides_arg_of_the_same_name() -> None:
    text = """
        FROM busybox
        ARG CONT_IMG_VER
        ENV CONT_IMG_VER=v1.0.0
        RUN echo $CONT_IMG_VER
        LABEL v=$CONT_IMG_VER
    """
    *_, run, label = steps(text, CONT_IMG_VER="v2.0.1")
    assert label.args == ("v", "v1.0.0")
    assert dict(run.env)["CONT_IMG_VER"] == "v1.0.0"


def test_env_default_from_arg() -> None:
    text = "FROM busybox\nARG V\nENV V=${V:-v1.0.0}\nLABEL v=$V\n"
    assert steps(text)[2].args == ("v", "v1.0.0")
    assert steps(text, V="v2")[2].args == ("v", "v2")


def test_env_values_on_one_line_see_the_previous_values() -> None:
    *_, env2, label = steps("FROM busybox\nENV abc=hello\nENV abc=bye def=$abc\nLABEL d=$def a=$abc\n")
    assert env2.pairs() == [("abc", "bye"), ("def", "hello")]
    assert label.args == ("d", "hello", "a", "bye")


def test_env_quotes_and_legacy_form_are_processed() -> None:
    env1, env2 = steps('FROM busybox\nENV a=1 b="v 2" c=x\\ y\nENV MSG "hello   world"\n')
    assert env1.pairs() == [("a", "1"), ("b", "v 2"), ("c", "x y")]
    assert env2.pairs() == [("MSG", "hello   world")]


def test_base_image_env_is_used_for_substitution() -> None:
    (workdir,) = steps("FROM golang\nWORKDIR $GOPATH/src\n", base_env={"GOPATH": "/go"})
    assert workdir.args == ("/go/src",)
    assert workdir.env == (("GOPATH", "/go"),)


def test_args_are_scoped_per_stage() -> None:
    text = """
        FROM busybox AS one
        ARG X=1
        LABEL x=$X
        FROM busybox AS two
        LABEL x=$X
    """
    df = parse(text)
    assert resolve_stage(df, 0)[1].args == ("x", "1")
    assert resolve_stage(df, 1)[0].args == ("x", "")


def test_instructions_that_do_not_substitute() -> None:
    run, cmd, entrypoint, hc = steps(
        'FROM busybox\nARG A=1\nRUN echo $A\nCMD echo $A\nENTRYPOINT ["$A"]\nHEALTHCHECK CMD test $A\n'
    )[1:]
    assert run.args == ("echo $A",)
    assert cmd.args == ("echo $A",)
    assert entrypoint.args == ("$A",)
    assert hc.args == ("CMD", "test $A")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("COPY $SRC/*.py ${DST}/", ("src/*.py", "/app/")),
        ("ADD $SRC.tar /opt/", ("src.tar", "/opt/")),
        ("WORKDIR $DST", ("/app",)),
        ("USER ${U}:${U}", ("1000:1000",)),
        ("EXPOSE $PORT/udp", ("8080/udp",)),
        ("VOLUME $DST/data", ("/app/data",)),
        ("STOPSIGNAL SIG$SIG", ("SIGTERM",)),
        ("LABEL $SRC=$DST", ("src", "/app")),
    ],
)
def test_instructions_that_substitute(line: str, expected: tuple[str, ...]) -> None:
    text = f"FROM busybox\nARG SRC=src DST=/app U=1000 PORT=8080 SIG=TERM\n{line}\n"
    assert steps(text)[1].args == expected


def test_copy_flags_are_substituted() -> None:
    copy = steps("FROM busybox\nARG STAGE=build OWNER=app\nCOPY --from=$STAGE --chown=$OWNER a b\n")[1]
    assert (copy.flag("from"), copy.flag("chown")) == ("build", "app")


def test_run_mount_is_substituted_and_typed() -> None:
    run = steps("FROM busybox\nARG CACHE=/root/.cache\nRUN --mount=type=cache,target=$CACHE,id=pip x\n")[1]
    assert (run.mounts[0].target, run.mounts[0].id) == ("/root/.cache", "pip")


def test_copy_heredoc_content_is_expanded_unless_quoted() -> None:
    text = "FROM busybox\nARG NAME=world\nCOPY <<EOF /a\nhello $NAME\nEOF\nCOPY <<'EOF' /b\nhello $NAME\nEOF\n"
    _, expanded, raw = steps(text)
    assert expanded.heredocs[0].content == "hello world\n"
    assert raw.heredocs[0].content == "hello $NAME\n"
    assert expanded.args == ("<<EOF", "/a")


def test_run_heredoc_is_left_to_the_shell() -> None:
    run = steps("FROM busybox\nARG NAME=world\nRUN <<EOF\necho $NAME\nEOF\n")[1]
    assert run.heredocs[0].content == "echo $NAME\n"


def test_predefined_proxy_args_need_no_declaration_and_stay_out_of_build_args() -> None:
    run, label = steps("FROM busybox\nRUN curl x\nLABEL p=$HTTP_PROXY\n", HTTP_PROXY="http://proxy:3128",
                       no_proxy="localhost")  # fmt: skip
    assert run.proxy_args == (("HTTP_PROXY", "http://proxy:3128"), ("no_proxy", "localhost"))
    assert run.build_args == ()
    assert label.args == ("p", "http://proxy:3128")


def test_declared_proxy_arg_is_a_build_arg() -> None:
    run = steps("FROM busybox\nARG HTTP_PROXY\nRUN curl x\n", HTTP_PROXY="http://p")[1]
    assert run.build_args == (("HTTP_PROXY", "http://p"),)
    assert run.proxy_args == ()


def test_unused_build_args() -> None:
    df = parse("ARG A\nFROM busybox\nARG B=1\n", A="1", B="2", C="3", HTTP_PROXY="p")
    assert unused_build_args(df) == ["C"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ADD $URL /x", "ADD from a URL is not supported: no network fetch is done here"),
        ("EXPOSE $BAD", "invalid containerPort: eighty"),
        ("EXPOSE 80/icmp", "invalid proto: icmp"),
        ("WORKDIR ${REQUIRED:?set REQUIRED}", "REQUIRED: set REQUIRED"),
        ("LABEL a=${oops", "syntax error: missing '}'"),
        ("RUN --mount=type=cache echo", "--mount=type=cache: mount type cache requires a target"),
        ("USER $NOBODY", "USER cannot be empty"),
        ("STOPSIGNAL SIGWHATEVER", "invalid signal: SIGWHATEVER"),
        ("STOPSIGNAL 99", "invalid signal: 99"),
    ],
)
def test_substitution_errors_are_located(line: str, message: str) -> None:
    text = f"FROM busybox\nARG URL=https://example.com/a.tgz BAD=eighty\n{line}\n"
    with pytest.raises(DockerfileError) as info:
        steps(text)
    assert str(info.value) == f"Dockerfile:3: {message}"


def test_step_text_is_normalised() -> None:
    copy = steps("FROM busybox\nARG D=/app\nCOPY --link --chown=1 a   $D/\n")[1]
    assert copy.text == 'COPY --chown=1 --link=true ["a", "/app/"]'
    cmd = steps('FROM busybox\nCMD ["a"]\n')[0]
    assert cmd.text == 'CMD ["a"] (exec)'


# ----------------------------------------------------------------------- platform ARGs and triggers


def test_automatic_platform_args_in_from_and_after_redeclaration() -> None:
    text = """
        FROM --platform=$BUILDPLATFORM golang AS build
        ARG TARGETOS TARGETARCH
        RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build
        LABEL arch=$TARGETARCH variant=$TARGETVARIANT
    """
    df = parse_dockerfile(textwrap.dedent(text).lstrip("\n"), platform="linux/arm/v7")
    assert df.stages[0].platform == host_platform()
    _, run, label = resolve_stage(df, 0)
    assert dict(run.build_args) == {"TARGETOS": "linux", "TARGETARCH": "arm"}
    assert label.args == ("arch", "arm", "variant", "")  # TARGETVARIANT was not redeclared


def test_platform_args_split_the_platform() -> None:
    args = platform_args("linux/arm64", "linux/amd64")
    assert (args["TARGETPLATFORM"], args["TARGETOS"], args["TARGETARCH"], args["TARGETVARIANT"]) == (
        "linux/arm64", "linux", "arm64", "",
    )  # fmt: skip
    assert args["BUILDARCH"] == "amd64"
    assert host_platform().startswith("linux/")


def test_onbuild_triggers_run_first_in_the_stage_scope() -> None:
    triggers = parse_triggers(["ENV APP=/srv", "COPY . $APP"])
    assert [t.keyword for t in triggers] == ["ENV", "COPY"]
    steps_ = resolve_stage(parse_dockerfile("FROM base\nWORKDIR $APP\n"), 0, triggers=triggers)
    assert [(s.position, s.keyword, s.args) for s in steps_] == [
        (-2, "ENV", ("APP", "/srv")),
        (-1, "COPY", (".", "/srv")),
        (0, "WORKDIR", ("/srv",)),
    ]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [("FROM x", "ONBUILD:2: FROM isn't allowed as an ONBUILD trigger"),
     ("BOGUS x", "ONBUILD:2: unknown instruction: BOGUS"),
     ("  ", "ONBUILD:2: empty ONBUILD trigger")],
)  # fmt: skip
def test_bad_triggers(trigger: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse_triggers(["RUN ok", trigger])
    assert str(info.value) == message


@pytest.mark.parametrize("value", ["SIGTERM", "term", "SIGQUIT", "9", "SIGRTMIN+3", "RTMAX-1", "SIGWINCH"])
def test_valid_stop_signals(value: str) -> None:
    assert steps(f"FROM busybox\nSTOPSIGNAL {value}\n")[0].args == (value,)
