"""The sandbox's list of the account's fields: ``GET /platform/contacts/fields``.

    GET /platform/contacts/fields        Authorization: Bearer ACCESS
        200 {"fields": [...]}: ``SandboxConfig.fields`` when set (``rd-importer sandbox --fields
        FILE``), else ``DEFAULT_FIELDS``; 401 shape 1 without a live access token (the API key
        cannot list fields).

``DEFAULT_FIELDS`` is an account as RD Station describes one: its standard fields, and custom
fields of every type (text, number, yes/no, list, combo box, radio buttons, multiple choice),
among them every ``cf_*`` of the bundled mappings (``mappings/example.yaml``: ``cf_cep``,
``cf_plano``, ``cf_data_de_cadastro``), so the quick start runs with ``--auth oauth`` too.
Reading the list is not counted in ``SandboxState``: it records nothing and costs no budget.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import web

from importer.errors import InputError, printable
from importer.sandbox.rules import json_response

if TYPE_CHECKING:
    from importer.sandbox.oauth import OAuthProvider

FIELDS_PATH: Final = "/platform/contacts/fields"
MAX_FILE_BYTES: Final = 4 * 1024 * 1024  # as the importer reads at most


def _field(
    ident: str,
    default: str,
    pt_br: str,
    data_type: str = "STRING",
    presentation: str = "TEXT_INPUT",
    options: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        # Stable across runs, as an account's are.
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"rd-importer-sandbox:{ident}")),
        "api_identifier": ident,
        "custom_field": ident.startswith("cf_"),
        "data_type": data_type,
        "name": {"default": default, "pt-BR": pt_br},
        "label": {"default": default, "pt-BR": pt_br},
        "presentation_type": presentation,
    }
    if options:
        entry["validation_rules"] = {
            "valid_options": [{"value": value, "label": label} for value, label in options]
        }
    return entry


DEFAULT_FIELDS: Final[tuple[dict[str, Any], ...]] = (
    _field("name", "Name", "Nome"),
    _field("email", "Email", "Email", presentation="EMAIL_INPUT"),
    _field("job_title", "Job title", "Cargo"),
    _field("bio", "Bio", "Minibiografia", presentation="TEXT_AREA"),
    _field("website", "Website", "Website", presentation="URL_INPUT"),
    _field("personal_phone", "Phone", "Telefone", presentation="PHONE_INPUT"),
    _field("mobile_phone", "Mobile phone", "Celular", presentation="PHONE_INPUT"),
    _field("city", "City", "Cidade"),
    _field("state", "State", "Estado"),
    _field("country", "Country", "País"),
    _field("twitter", "Twitter", "Twitter"),
    _field("facebook", "Facebook", "Facebook"),
    _field("linkedin", "LinkedIn", "LinkedIn"),
    _field("birthdate", "Birthdate", "Data de nascimento"),
    _field("tags", "Tags", "Tags", data_type="STRING[]"),
    # custom fields: those of mappings/example.yaml first
    _field("cf_cep", "CEP", "CEP"),
    _field(
        "cf_plano",
        "Plano",
        "Plano",
        presentation="COMBO_BOX",
        options=(("basico", "Básico"), ("pro", "Pro"), ("avancado", "Avançado")),
    ),
    _field("cf_data_de_cadastro", "Data de cadastro", "Data de cadastro"),
    _field(
        "cf_numero_de_funcionarios",
        "Número de funcionários",
        "Número de funcionários",
        data_type="INTEGER",
        presentation="NUMBER_INPUT",
    ),
    _field(
        "cf_cliente_ativo",
        "Cliente ativo",
        "Cliente ativo",
        data_type="BOOLEAN",
        presentation="CHECK_BOX",
    ),
    _field(
        "cf_segmento",
        "Segmento",
        "Segmento",
        presentation="RADIO_BUTTON",
        options=(
            ("varejo", "Varejo"),
            ("industria", "Indústria"),
            ("servicos", "Serviços"),
            ("educacao", "Educação"),
            ("saude", "Saúde"),
        ),
    ),
    _field(
        "cf_areas_de_interesse",
        "Áreas de interesse",
        "Áreas de interesse",
        data_type="STRING[]",
        presentation="MULTIPLE_CHOICE",
        options=(
            ("marketing digital", "Marketing digital"),
            ("automacao", "Automação"),
            ("vendas", "Vendas"),
            ("crm", "CRM"),
            ("eventos", "Eventos"),
        ),
    ),
    _field("cf_observacoes", "Observações", "Observações", presentation="TEXT_AREA"),
)


def fields_answer(configured: Any) -> dict[str, Any]:
    """The body of the answer: the configured list (RD Station's ``{"fields": [...]}`` or the
    bare list), else the default account's."""
    if configured is None:
        return {"fields": list(DEFAULT_FIELDS)}
    if isinstance(configured, dict):
        return configured
    return {"fields": list(configured)}


def load_fields_file(path: Path) -> Any:
    """The field list of a JSON file (as RD Station answers it, or the bare list), for
    ``rd-importer sandbox --fields FILE``; InputError naming the file when it is not one."""
    shown = printable(str(path))
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"--fields {shown}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"--fields {shown} holds more than {MAX_FILE_BYTES:,} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"--fields {shown} is not JSON ({exc}): see `{FIELDS_PATH}`") from None
    entries = data.get("fields") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise InputError(
            f'--fields {shown}: write {{"fields": [...]}} as RD Station answers {FIELDS_PATH}, '
            "or the bare list of fields"
        )
    return data


class FieldsEndpoint:
    """The handler, behind the OAuth provider's bearer check."""

    def __init__(self, provider: OAuthProvider, configured: Any) -> None:
        self.provider = provider
        self.body = orjson.dumps(fields_answer(configured))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(FIELDS_PATH, self.get_fields)

    async def get_fields(self, request: web.Request) -> web.Response:
        client_id, problem = self.provider.bearer(request)
        if client_id is None:
            return json_response(problem, 401)
        return web.Response(body=self.body, content_type="application/json")
