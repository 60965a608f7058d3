"""The controller's command line: values are checked when parsed, with the reason in the error."""
from __future__ import annotations

import argparse

import pytest

from vpcnet.app import controller


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    controller.add_arguments(p)
    return p.parse_args(list(argv))


def test_service_cidr_defaults_to_kubernetes_range_and_takes_v4_and_v6():
    assert parse().service_cidr == "10.96.0.0/16"
    assert parse("--service-cidr", "10.100.0.0/24").service_cidr == "10.100.0.0/24"
    assert parse("--service-cidr", "fd00:96::/112").service_cidr == "fd00:96::/112"


@pytest.mark.parametrize("value,why", [("10.96.0.1/16", "host bits set"), ("nope", "is not a CIDR"),
                                       ("10.96.0.0/30", "too small")])
def test_bad_service_cidr_is_refused_with_the_reason(capsys, value, why):
    with pytest.raises(SystemExit):
        parse("--service-cidr", value)
    err = capsys.readouterr().err
    assert "--service-cidr" in err and why in err and value in err
