"""The SSH proxy in ``/metrics`` (issue 13): a live connection through the proxy shows in
the live-connections gauge of its node while it is open, and what it relays in the byte
counters, both ways."""

from __future__ import annotations

import re
import time

import pexpect
from proxy_world import World, shell

from pamcore.monitoring import Monitor

#: Prometheus writes the labels in name order.
LIVE = re.compile(r'^pamcore_live_connections\{node="[^"]+",protocol="ssh"\} (\S+)$', re.M)


def relayed(metrics: str, direction: str) -> float:
    pattern = rf'^pamcore_relayed_bytes_total\{{direction="{direction}",protocol="ssh"\}} (\S+)$'
    match = re.search(pattern, metrics, re.M)
    return float(match.group(1)) if match else 0.0


def live(metrics: str) -> float:
    return sum(float(count) for count in LIVE.findall(metrics))


def scrape(world: World) -> str:
    answer = Monitor(world.core).metrics()
    assert answer is not None and answer.status == 200
    return answer.body.decode()


def test_a_live_connection_and_its_bytes_show_in_metrics(world: World) -> None:
    before = scrape(world)
    assert live(before) == 0

    child = shell(world)
    child.sendline("head -c 100000 /dev/zero | tr '\\0' x; echo; echo D''ONE")
    child.expect("DONE", timeout=15)
    during = scrape(world)

    assert live(during) == 1
    assert relayed(during, "to_client") - relayed(before, "to_client") >= 100000
    assert relayed(during, "to_target") - relayed(before, "to_target") >= len("head -c 100000")

    child.sendline("exit")
    child.expect(pexpect.EOF, timeout=15)
    deadline = time.monotonic() + 10
    while live(after := scrape(world)) != 0:
        assert time.monotonic() < deadline, after
        time.sleep(0.1)
