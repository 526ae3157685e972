"""The stage graph: dependencies, --target selection, parallel levels, stage numbering, reference errors."""

from __future__ import annotations

import textwrap

import pytest

from node.builder.dockerfile import DockerfileError, parse_dockerfile
from node.builder.graph import (
    analyze_stage,
    find_target,
    needed_stages,
    plan_build,
    stage_dependencies,
    step_label,
)

MULTI = """
    FROM golang:1.22 AS deps
    RUN go mod download

    FROM deps AS build
    RUN go build -o /out/app

    FROM node:20 AS web
    RUN npm run build

    FROM busybox AS lint
    COPY --from=deps /go /go

    FROM scratch AS final
    COPY --from=build /out/app /app
    COPY --from=web /dist /www
    COPY --from=alpine:3.19 /etc/ssl /etc/ssl
"""


def parse(text: str, **build_args: str):
    return parse_dockerfile(textwrap.dedent(text).lstrip("\n"), build_args=build_args)


def names(levels) -> list[list[str]]:
    return [[stage.display_name for stage in level] for level in levels]


def test_dependencies_and_external_images() -> None:
    deps = stage_dependencies(parse(MULTI))
    assert {i: sorted(d.stages) for i, d in deps.items()} == {0: [], 1: [0], 2: [], 3: [0], 4: [1, 2]}
    assert deps[0].images == ("golang:1.22",)
    assert deps[4].images == ("alpine:3.19",)  # a --from naming no stage is an image
    assert deps[1].images == ()


def test_plan_for_last_stage_skips_unused_stages_and_parallelises() -> None:
    assert names(plan_build(parse(MULTI))) == [["deps", "web"], ["build"], ["final"]]


def test_plan_for_target() -> None:
    df = parse(MULTI)
    assert names(plan_build(df, "lint")) == [["deps"], ["lint"]]
    assert names(plan_build(df, "WEB")) == [["web"]]
    assert needed_stages(df, "final") == [0, 1, 2, 4]


def test_unknown_target() -> None:
    with pytest.raises(DockerfileError) as info:
        plan_build(parse(MULTI), "release")
    assert str(info.value) == "Dockerfile: target stage 'release' could not be found"


def test_default_target_is_last_stage() -> None:
    assert find_target(parse(MULTI), None).name == "final"


def test_numeric_from_and_run_mount_from() -> None:
    df = parse("""
        FROM busybox
        FROM busybox AS tools
        FROM busybox
        COPY --from=0 /a /a
        RUN --mount=type=bind,from=tools,target=/t --mount=type=cache,target=/c,from=node:20 ls /t
    """)
    deps = analyze_stage(df, 2)
    assert sorted(deps.stages) == [0, 1]
    assert deps.images == ("busybox", "node:20")
    assert names(plan_build(df)) == [["stage-0", "tools"], ["stage-2"]]


def test_from_reference_expanded_with_stage_args() -> None:
    text = """
        FROM busybox AS a
        FROM busybox AS b
        FROM busybox
        ARG SRC=a
        COPY --from=$SRC /x /x
    """
    assert analyze_stage(parse(text), 2).stages == frozenset({0})
    assert analyze_stage(parse(text, SRC="b"), 2).stages == frozenset({1})
    assert analyze_stage(parse(text, SRC="redis"), 2).images == ("busybox", "redis")


def test_global_arg_in_from_line_selects_the_stage() -> None:
    text = """
        ARG VARIANT=slim
        FROM busybox AS slim
        FROM debian AS full
        FROM ${VARIANT}
    """
    assert names(plan_build(parse(text))) == [["slim"], ["stage-2"]]
    assert names(plan_build(parse(text, VARIANT="full"))) == [["full"], ["stage-2"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nFROM busybox\nCOPY --from=5 /a /a\n",
         "Dockerfile:3: COPY --from=5: invalid stage index 5, the Dockerfile has 2 stages"),
        ("FROM busybox\nCOPY --from=0 /a /a\n",
         "Dockerfile:2: COPY --from=0: circular dependency detected on stage: stage-0"),
        ("FROM busybox\nCOPY --from=1 /a /a\nFROM busybox\n",
         "Dockerfile:2: COPY --from=1 refers to a later stage (1): a stage can only use earlier stages"),
        ("FROM busybox AS me\nCOPY --from=ME /a /a\n",
         "Dockerfile:2: COPY --from=ME: circular dependency detected on stage: me"),
        ("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n",
         "Dockerfile:2: COPY --from=b refers to a later stage (1): a stage can only use earlier stages"),
        ("FROM busybox AS a\nRUN --mount=from=b,target=/b ls\nFROM busybox AS b\n",
         "Dockerfile:2: RUN --mount=from=b refers to a later stage (1): a stage can only use earlier stages"),
    ],
)
def test_bad_stage_references(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        plan_build(parse_dockerfile(text))
    assert str(info.value) == message


def test_from_sees_only_earlier_stages_as_docker_does() -> None:
    df = parse_dockerfile("FROM b AS a\nFROM busybox AS b\nFROM b AS c\n")
    assert [(s.base_is_stage, s.base_stage_index) for s in df.stages] == [(False, None), (False, None), (True, 1)]
    assert stage_dependencies(df)[0].images == ("b",)


def test_step_labels_as_buildkit_prints_them() -> None:
    df = parse(MULTI)
    assert step_label(df, 1, 1) == "[build 1/2]"
    assert step_label(df, 4, 4) == "[final 4/4]"
    single = parse("FROM busybox\nRUN a\nRUN b\n")
    assert [step_label(single, 0, k) for k in (1, 2, 3)] == ["[1/3]", "[2/3]", "[3/3]"]
    unnamed = parse("FROM busybox\nFROM busybox\nRUN x\n")
    assert step_label(unnamed, 1, 2) == "[stage-1 2/2]"
    assert step_label(parse("FROM busybox AS only\nRUN x\n"), 0, 2) == "[2/2]"  # BuildKit drops a lone name
    with pytest.raises(ValueError):
        step_label(single, 0, 4)
