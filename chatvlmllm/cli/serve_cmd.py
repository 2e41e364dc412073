"""`chatvlmllm serve`: the local engines behind an OpenAI-compatible API (see chatvlmllm.server)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys

from chatvlmllm.errors import PlanError, UserError
from chatvlmllm.i18n import _
from chatvlmllm.models.planner import ATTENTION_CHOICES, PlanOverrides
from chatvlmllm.settings import settings

API_KEY_ENV = "CHATVLMLLM_API_KEY"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve local models over an OpenAI-compatible API",
        description="Serve local models at /v1/chat/completions and /v1/models. Model ids are the catalog keys "
        "(and the folder name for --model-path). Without --model, the model `doctor` would choose.",
    )
    p.add_argument("--model", action="append", default=[], metavar="KEY", help="catalog key; repeat to serve several")
    p.add_argument(
        "--model-path", action="append", default=[], metavar="DIR", help="a local checkpoint folder; repeatable"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; unset means no key)",
    )
    p.add_argument("--attn", choices=ATTENTION_CHOICES, default="auto", help="attention implementation")
    p.add_argument(
        "--max-pixels", type=int, help="default pixel budget per image (a request's max_pixels overrides it)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chatvlmllm import logs, server
    from chatvlmllm.chat.engine_cache import default_cache
    from chatvlmllm.models.hardware import probe

    logs.configure(logging.INFO)  # a server reports what it does, like other API servers
    specs = served_specs(args.model, args.model_path)
    check_port_free(args.host, args.port)
    api_key = args.api_key or settings().api_key or None
    overrides = PlanOverrides(attention=args.attn, max_pixels=args.max_pixels)
    models = server.plan_models(specs, probe(), overrides)
    cache = default_cache()
    for served in models:
        if not served.plan.runnable:
            raise PlanError(
                _("{model} cannot run here: {reason}").format(model=served.id, reason=served.plan.why_not())
            )
        print(
            _("loading {model} ({device}, {attention}, {dtype})").format(
                model=served.id, device=served.plan.device, attention=served.plan.attention, dtype=served.plan.dtype
            ),
            file=sys.stderr,
        )
        cache.get(served.spec, served.plan)  # load now: a broken model fails here, not at the first request
    if not api_key and not is_loopback(args.host):
        print(
            _(
                "warning: serving on {host} without an API key; anyone who can reach this port can use it "
                "(set --api-key or {variable})"
            ).format(host=args.host, variable=f"${API_KEY_ENV}"),
            file=sys.stderr,
        )
    host = f"[{args.host}]" if ":" in args.host else args.host
    names = ", ".join(m.id for m in models)
    print(_("serving {models} at {url}").format(models=names, url=f"http://{host}:{args.port}/v1"), file=sys.stderr)
    server.run_server(server.create_app(models, api_key=api_key, cache=cache), args.host, args.port)
    return 0


def served_specs(keys: list[str], paths: list[str]) -> list:
    """Catalog entries for --model keys and --model-path folders; the planner's default when none."""
    from chatvlmllm.models.catalog import get_model, load_catalog, spec_from_path

    catalog = load_catalog()
    specs = [get_model(key, catalog) for key in keys] + [spec_from_path(path) for path in paths]
    if not specs:
        from chatvlmllm.models.choice import default_model
        from chatvlmllm.models.hardware import probe

        key, why = default_model(probe(), catalog)
        print(_("no --model given: serving {model} ({why})").format(model=key, why=why), file=sys.stderr)
        specs = [get_model(key, catalog)]
    ids = [spec.key for spec in specs]
    duplicates = sorted({key for key in ids if ids.count(key) > 1})
    if duplicates:
        raise UserError(f"two served models would share the id {', '.join(duplicates)}; serve each only once")
    return specs


def check_port_free(host: str, port: int) -> None:
    """Fail before loading any model when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe_socket:
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe_socket.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another --port.") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
