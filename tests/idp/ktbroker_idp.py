"""A small OpenID Connect provider for ktbroker's tests: django-oauth-toolkit, RS256 ID tokens,
a groups claim, the device authorization grant (RFC 8628) and the password grant, over TLS.

It behaves as Keycloak does where django-oauth-toolkit does not: the password and device grants
return an ID token when the scope asks for `openid`, and the discovery document names the device
authorization endpoint. Nothing here is a fake of the protocol: the broker talks to it exactly as
it would to Keycloak or Entra ID.

    python ktbroker_idp.py CONFIG.json

CONFIG.json: {"state_dir", "host", "port", "cert", "key", "issuer_path" ("/o"),
"users": [{"username", "password", "groups": [...], "email", "amr": [...]}],
"clients": [{"client_id", "client_secret", "grant": "password" | "device_code", "hostile": MODE}]}.
It prints "ready <port>" on stdout once it serves, and serves until killed.

A client may be `hostile`, for the broker's refusal tests: its ID tokens come back
- `replay`: the first token response again, for every later request (one `jti` twice);
- `foreign-key`: signed by a key the provider does not publish, under its real key id;
- `expired`: with `iat` and `exp` an hour in the past, correctly signed;
- `foreign-audience`: issued to another client (`aud`), correctly signed.
"""

import base64
import json
import os
import socketserver
import ssl
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import django
from django.conf import settings

CONFIG = json.load(open(sys.argv[1]))
HERE = os.path.dirname(os.path.abspath(__file__))
STATE = CONFIG["state_dir"]
ISSUER_PATH = CONFIG.get("issuer_path", "/o")
ISSUER = f"https://{CONFIG['host']}:{CONFIG['port']}{ISSUER_PATH}"


def _signing_key():
    path = os.path.join(STATE, "oidc-signing-key.pem")
    if not os.path.exists(path):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with open(path, "wb") as f:
            f.write(pem)
    return open(path).read()


settings.configure(
    DEBUG=False,
    SECRET_KEY=os.urandom(32).hex(),
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "oauth2_provider",
    ],
    MIDDLEWARE=[
        f"{__name__}.token_requests_logged",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [os.path.join(HERE, "templates")],
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(STATE, "idp.sqlite3")}},
    LOGIN_URL=f"{ISSUER_PATH}/login/",
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
    CSRF_TRUSTED_ORIGINS=[f"https://{CONFIG['host']}:{CONFIG['port']}"],
    PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
    OAUTH2_PROVIDER={
        "OIDC_ENABLED": True,
        "OIDC_RSA_PRIVATE_KEY": _signing_key(),
        "OIDC_ISS_ENDPOINT": ISSUER,
        "OAUTH2_VALIDATOR_CLASS": f"{__name__}.Validator",
        "OIDC_SERVER_CLASS": f"{__name__}.KeycloakLikeServer",
        "SCOPES": {"openid": "OpenID Connect", "profile": "Profile", "email": "Email", "groups": "Groups"},
        "OAUTH_DEVICE_VERIFICATION_URI": f"{ISSUER}/device/",
        # As Keycloak and Entra ID offer it: the address with the code in it.
        "OAUTH_DEVICE_VERIFICATION_URI_COMPLETE": ISSUER + "/device/?user_code={user_code}",
        "DEVICE_FLOW_INTERVAL": 1,
        "ID_TOKEN_EXPIRE_SECONDS": 300,
        "PKCE_REQUIRED": False,
    },
    LOGGING={
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": os.path.join(STATE, "idp.log")}},
        "root": {"handlers": ["file"], "level": "INFO"},
        "loggers": {"django": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    },
)
django.setup()

import oauthlib.openid  # noqa: E402
from django.contrib.auth import views as auth_views  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from jwcrypto import jwk, jwt  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402
from oauth2_provider.oauth2_validators import OAuth2Validator  # noqa: E402
from oauth2_provider.views.oidc import ConnectDiscoveryInfoView  # noqa: E402

# Per-user authentication method references, as a second factor would set them (RFC 8176).
AMR = {u["username"]: u.get("amr", ["pwd"]) for u in CONFIG["users"]}


class Validator(OAuth2Validator):
    oidc_claim_scope = None  # every claim in every ID token, as the tests' tenants expect

    def get_additional_claims(self, request):
        user = request.user
        return {
            "preferred_username": user.username,
            "email": user.email,
            "groups": sorted(g.name for g in user.groups.all()),
            "amr": AMR.get(user.username, ["pwd"]),
        }


HOSTILE = {c["client_id"]: c.get("hostile") for c in CONFIG["clients"]}
FIRST_ANSWER = {}
ROGUE_KEY = None


def _b64decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _resign(id_token, key, change):
    """The ID token with its claims changed by `change`, signed by `key` under the same header."""
    header_part, payload_part, _ = id_token.split(".")
    claims = json.loads(_b64decode(payload_part))
    change(claims)
    token = jwt.JWT(header=json.loads(_b64decode(header_part)), claims=claims)
    token.make_signed_token(key)
    return token.serialize()


def _misbehave(mode, client_id, token):
    global ROGUE_KEY
    genuine = jwk.JWK.from_pem(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"].encode())
    if mode == "replay":
        return FIRST_ANSWER.setdefault(client_id, token)
    if mode == "foreign-key":
        ROGUE_KEY = ROGUE_KEY or jwk.JWK.generate(kty="RSA", size=2048)
        token["id_token"] = _resign(token["id_token"], ROGUE_KEY, lambda claims: None)
    elif mode == "expired":

        def past(claims):
            claims["iat"] -= 3600
            claims["auth_time"] = claims["iat"]
            claims["exp"] = claims["iat"] + 300

        token["id_token"] = _resign(token["id_token"], genuine, past)
    elif mode == "foreign-audience":
        token["id_token"] = _resign(token["id_token"], genuine, lambda claims: claims.update(aud="another-app"))
    return token


def _with_id_token(create_token_response, oidc_grant):
    """Wraps a grant's token response so that a scope with `openid` also gets an ID token."""

    def create(request, token_handler):
        headers, body, status = create_token_response(request, token_handler)
        if status == 200 and request.scopes and "openid" in request.scopes:
            token = oidc_grant.add_id_token(json.loads(body), token_handler, request)
            client_id = getattr(request.client, "client_id", request.client_id)
            mode = HOSTILE.get(client_id)
            if mode:
                token = _misbehave(mode, client_id, token)
            body = json.dumps(token)
        return headers, body, status

    return create


class KeycloakLikeServer(oauthlib.openid.Server):
    def __init__(self, request_validator, *args, **kwargs):
        super().__init__(request_validator, *args, **kwargs)
        for grant in (self.password_grant, self.device_code_grant):
            grant.create_token_response = _with_id_token(grant.create_token_response, self.openid_connect_auth)


class Discovery(ConnectDiscoveryInfoView):
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        data = json.loads(response.content)
        data["device_authorization_endpoint"] = f"{ISSUER}/device-authorization/"
        data["grant_types_supported"] = ["password", "urn:ietf:params:oauth:grant-type:device_code"]
        return JsonResponse(data)


urlpatterns = [
    path(f"{ISSUER_PATH[1:]}/.well-known/openid-configuration", Discovery.as_view()),
    path(f"{ISSUER_PATH[1:]}/login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path(f"{ISSUER_PATH[1:]}/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]


def seed():
    call_command("migrate", verbosity=0, interactive=False)
    for spec in CONFIG["users"]:
        user, _ = User.objects.get_or_create(username=spec["username"])
        user.email = spec.get("email", "")
        user.is_active = spec.get("active", True)
        user.set_password(spec["password"])
        user.save()
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in spec.get("groups", [])])
    Application = get_application_model()
    grants = {"password": Application.GRANT_PASSWORD, "device_code": Application.GRANT_DEVICE_CODE}
    for spec in CONFIG["clients"]:
        app, _ = Application.objects.get_or_create(client_id=spec["client_id"])
        app.name = spec["client_id"]
        # No secret: a public client (as Entra ID's device code flow wants the broker to be).
        app.client_type = Application.CLIENT_CONFIDENTIAL if spec["client_secret"] else Application.CLIENT_PUBLIC
        app.authorization_grant_type = grants[spec["grant"]]
        app.client_secret = spec["client_secret"]  # hashed on save
        app.algorithm = Application.RS256_ALGORITHM
        app.skip_authorization = False
        app.save()


def token_requests_logged(get_response):
    """Writes `token CLIENT_ID GRANT_TYPE` to token.log for every token endpoint request, so a test
    can count one client's polls."""

    def middleware(request):
        if request.method == "POST" and request.path.endswith("/token/"):
            client_id = request.POST.get("client_id", "-")
            auth = request.META.get("HTTP_AUTHORIZATION", "")
            if auth.startswith("Basic "):
                client_id = base64.b64decode(auth[6:]).decode(errors="replace").split(":")[0]
            grant = request.POST.get("grant_type", "-")
            with open(os.path.join(STATE, "token.log"), "a") as log:
                log.write(f"token {client_id} {grant}\n")
        return get_response(request)

    return middleware


class QuietHandler(WSGIRequestHandler):
    def finish(self):
        super().finish()
        # wsgiref ends a response by closing the connection: say so in TLS (close_notify), or a
        # careful client (rustls) must take the body as truncated.
        try:
            self.request.unwrap()
        except (OSError, ValueError):
            pass

    def log_message(self, format, *args):
        with open(os.path.join(STATE, "access.log"), "a") as log:
            log.write("%s %s\n" % (self.address_string(), format % args))


class ThreadingTLSServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def get_request(self):
        sock, address = super().get_request()
        # The handshake runs in the request's own thread, so one slow client stalls nobody.
        return CONTEXT.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
CONTEXT.minimum_version = ssl.TLSVersion.TLSv1_2
CONTEXT.load_cert_chain(CONFIG["cert"], CONFIG["key"])


def main():
    seed()
    server = ThreadingTLSServer((CONFIG["host"], CONFIG["port"]), QuietHandler)
    server.set_app(get_wsgi_application())
    print(f"ready {server.server_address[1]}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
