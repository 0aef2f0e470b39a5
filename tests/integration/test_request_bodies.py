"""Compute API request bodies are checked against schemas/compute_requests.yaml at the
microversion asked, with Nova's 400s, before any handler or policy sees them."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from schemas.requests import request_names
from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import api_cloud


async def test_bodies_checked_against_their_schemas(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        server = {"name": "vm", "flavorRef": "1", "imageRef": "x"}

        async def message(nova: Nova, method: str, path: str, body: object) -> str:
            code, answer = await nova(method, path, body)
            assert code == 400, answer
            return str(answer["badRequest"]["message"])

        assert await message(demo, "POST", "/servers", {"server": {**server, "bogus": 1}}) == (
            f"Invalid input for field/attribute server. Value: { ({**server, 'bogus': 1}) }. "
            "Additional properties are not allowed ('bogus' was unexpected)"
        )
        assert await message(demo, "POST", "/servers", {}) == "'server' is a required property"
        described = {"server": {**server, "description": "d"}}
        assert "'description' was unexpected" in await message(demo, "POST", "/servers", described)
        nameless = {"server": {"flavorRef": "1"}}
        assert "'name' is a required property" in await message(demo, "POST", "/servers", nameless)
        assert await message(demo, "POST", "/servers/x/action", {"reboot": {"type": "LOUD"}}) == (
            "Invalid input for field/attribute type. Value: LOUD. "
            "'LOUD' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"
        )
        assert "no action or more than one" in await message(
            demo, "POST", "/servers/x/action", {"pause": None, "unpause": None}
        )
        # Nova takes any value for the argument-less actions: {} as well as null
        for verb in ("os-start", "os-stop", "pause", "unpause", "suspend", "resume", "lock"):
            for arg in ({}, None):
                code, answer = await demo("POST", "/servers/x/action", {verb: arg})
                assert code == 404 and "itemNotFound" in answer, (verb, arg)
        for verb in ("unlock", "confirmResize", "revertResize"):
            assert (await demo("POST", "/servers/x/action", {verb: {}}))[0] == 404
        bad_tag = {"tags": ["a/b"]}
        assert "does not match" in await message(demo.at("2.26"), "PUT", "/servers/x/tags", bad_tag)
        group = {"server_group": {"name": "g", "policies": ["affinity", "anti-affinity"]}}
        assert "is too long" in await message(demo, "POST", "/os-server-groups", group)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base}/compute/v2.1/servers",
                data=b"{not json",
                headers={**demo.headers, "Content-Type": "application/json"},
            ) as resp,
        ):
            assert resp.status == 400
            assert (await resp.json())["badRequest"]["message"] == "Malformed request body"
        # a valid body reaches the handler, which answers what a schema cannot say
        code, answer = await demo("POST", "/servers", {"server": server})
        assert (code, answer["badRequest"]["message"]) == (400, "Flavor 1 could not be found.")
        assert len(request_names()) >= 30
