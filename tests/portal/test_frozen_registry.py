"""Issue 12 on the portal: the public registry, its filters and sorting, the comparison page and the
home page's certificate rows show what was signed after the vendor edited its chip and target."""

from __future__ import annotations

import re

import pytest

from tests.certificates.frozen import EDITED, SIGNED, certify_then_edit

pytestmark = pytest.mark.django_db


@pytest.fixture
def edited(cast, program, client_for):
    return certify_then_edit(cast=cast, program=program, client_for=client_for)


def _row(page: str, serial: str) -> str:
    match = re.search(
        rf'<tr>\s*<td><input type="checkbox" name="serial" value="{serial}".*?</tr>', page, re.S
    )
    assert match, f"{serial} is not listed"
    return match.group(0)


def test_the_registry_page_shows_the_signed_chip_and_backend(edited, login):
    row = _row(login(None).get("/registry/").content.decode(), edited.serial)
    assert SIGNED["sku"] in row and SIGNED["name"] in row and f"<td>{SIGNED['backend']}</td>" in row
    assert (
        EDITED["sku"] not in row and EDITED["name"] not in row and f"<td>{EDITED['backend']}</td>" not in row
    )


@pytest.mark.parametrize(
    ("query", "found"),
    [
        (f"backend={EDITED['backend']}", False),
        (f"backend={SIGNED['backend']}", True),
        (f"chip={EDITED['sku']}", False),
        (f"chip={SIGNED['sku']}", True),
        ("q=Edited", False),
        ("q=Signed", True),
    ],
)
def test_the_registry_filters_read_the_signed_subject(edited, login, query, found):
    page = login(None).get(f"/registry/?{query}").content.decode()
    assert (edited.serial in page) is found


def test_the_registry_sorts_by_the_signed_sku(cast, program, certified, edited, login):
    from tests.factories import HardwareTargetFactory

    # Between the signed SKU (SIGNED-1) and the edited one (EDITED-9) in sort order.
    other = certified(target=HardwareTargetFactory(chip__vendor=cast.vendor, chip__sku="MIDDLE-5"))
    page = login(None).get("/registry/?ordering=chip").content.decode()
    assert page.index(other.serial) < page.index(edited.serial)


def test_the_compare_page_shows_the_signed_declarations(cast, certified, edited, login):
    other = certified()
    response = login(None).get(f"/registry/compare/?serial={edited.serial}&serial={other.serial}")
    assert response.status_code == 200
    page = response.content.decode()
    assert (
        SIGNED["sku"] in page and SIGNED["name"] in page and f"{SIGNED['slug']} · {SIGNED['backend']}" in page
    )
    assert EDITED["sku"] not in page and EDITED["name"] not in page and EDITED["slug"] not in page
    bf16 = re.search(r"Declared bf16 peak</th>(.*?)</tr>", page, re.S).group(1)
    assert "400" in bf16 and "9000" not in bf16


def test_the_home_page_rows_show_the_signed_chip(edited, login):
    page = login(None).get("/").content.decode()
    assert edited.serial in page and SIGNED["sku"] in page and EDITED["sku"] not in page


def test_the_certificate_page_shows_the_signed_subject(edited, login):
    page = login(None).get(f"/certificates/{edited.serial}/").content.decode()
    assert f"{SIGNED['name']} ({SIGNED['sku']})" in page and EDITED["sku"] not in page
    assert "Authentic and active" in page


def test_the_certificate_page_says_a_re_test_is_under_way_after_a_stack_change(
    cast, program, login, client_for
):
    from tests.certificates.frozen import certify_cpu_target

    certificate = certify_cpu_target(cast=cast, program=program)
    assert "Re-test" not in login(None).get(f"/certificates/{certificate.serial}/").content.decode()
    response = client_for(cast.owner).patch(
        f"/api/v1/targets/{certificate.target_id}/", {"driver_version": "999.1"}, format="json"
    )
    assert response.status_code == 200
    page = login(None).get(f"/certificates/{certificate.serial}/").content.decode()
    assert "<dt>Re-test</dt><dd>under way since" in page
    assert "999.1" not in page  # the page states what was certified only
