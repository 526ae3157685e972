"""examples/shop on one host: the file `pyswarm stack deploy` runs on a cluster runs unchanged with
`pycompose up` (a `build:` service, depends_on service_healthy, a secret, a config, a published port)."""

from __future__ import annotations

import pytest

from tests.compose.conftest import Compose, free_port
from tests.compose.test_examples import EXAMPLES, assert_nothing_left, bridges_of, fetch
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged


def test_shop_runs_with_pycompose_as_it_does_on_a_swarm(compose_engine: EngineProcess) -> None:
    shop = Compose(engine=compose_engine, directory=EXAMPLES / "shop")
    port = free_port()
    env = {"SHOP_PORT": str(port)}
    up = shop("up", "-d", "--wait", env=env, timeout=300)
    err = up.stderr
    assert err.index("Container shop-db-1  Healthy") < err.index("Container shop-api-1  Creating")
    body = fetch(f"http://127.0.0.1:{port}/cgi-bin/items")
    assert body.splitlines()[:3] == ["apple", "banana", "cherry"]  # the config, served by db
    assert "token: s3cr..." in body  # the secret, read by api
    bridges = bridges_of(shop, "shop")
    shop("down", "--rmi", "local", env=env)
    assert_nothing_left(shop, "shop", bridges)
