"""What someone running ``docker compose up`` relies on, checked from the files alone.

No Docker engine is needed: the compose file is read with PyYAML (which resolves the ``x-app``
anchor the way Compose does) and the Dockerfile as text.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONSOLE_SERVICES = ("migrate", "bucket", "web", "worker")
MILVUS_SERVICES = ("milvus", "etcd", "minio")
ONE_SHOT_SERVICES = ("migrate", "bucket")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def dockerfile_instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, continuation lines joined.

    For CMD, HEALTHCHECK and USER the last one is the one that counts.
    """
    text = (PROJECT_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.findall(rf"^{name}\s+(.*)$", text, flags=re.MULTILINE)
    assert found, f"the Dockerfile has no {name} instruction"
    return [arguments.strip() for arguments in found]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction, which runs without a shell."""
    assert arguments.startswith("["), f"expected exec form (a JSON array), got {arguments!r}"
    return json.loads(arguments)


def healthcheck_command(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    return ["CMD-SHELL", test] if isinstance(test, str) else list(test)


def checks_its_health(service: dict[str, Any]) -> bool:
    healthcheck = service.get("healthcheck")
    if not healthcheck or healthcheck.get("disable"):
        return False
    command = healthcheck_command(service)
    return command[0] in ("CMD", "CMD-SHELL") and len(command) > 1


def test_compose_runs_the_console_its_stores_and_an_optional_milvus(services):
    expected = {"postgres", "redis", "objects", *CONSOLE_SERVICES, *MILVUS_SERVICES}

    assert expected <= set(services)


def test_every_long_running_service_reports_its_health(services):
    long_running = {name for name, service in services.items() if service.get("restart") != "no"}

    assert long_running == set(services) - set(ONE_SHOT_SERVICES)
    assert sorted(name for name in long_running if not checks_its_health(services[name])) == []


def test_migrations_run_once_and_stop(services):
    migrate = services["migrate"]

    assert migrate["command"][:3] == ["python", "manage.py", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["web", "worker"])
def test_web_and_worker_start_after_migrations_with_a_healthy_broker(services, name):
    depends_on = services[name]["depends_on"]

    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert depends_on["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["web", "worker"])
def test_web_and_worker_share_no_disk_only_the_object_store(services, name):
    service = services[name]
    environment = service["environment"]

    assert "volumes" not in service, f"{name} mounts a volume; uploads belong in the bucket"
    assert environment["UPLOAD_STORAGE"] == "s3"
    assert environment["S3_ENDPOINT_URL"].endswith("//objects:9000}")
    assert environment["S3_PATH_STYLE"] == "true"
    assert service["depends_on"]["bucket"]["condition"] == "service_completed_successfully"


def test_the_bucket_is_created_once_the_object_store_is_healthy(services):
    bucket, objects = services["bucket"], services["objects"]

    assert bucket["command"] == ["python", "manage.py", "create_bucket"]
    assert bucket["restart"] == "no"
    assert bucket["depends_on"]["objects"]["condition"] == "service_healthy"
    assert "profiles" not in objects and checks_its_health(objects)
    # MinIO's keys are the console's: one pair of environment variables sets both.
    assert objects["environment"]["MINIO_ROOT_USER"] == bucket["environment"]["AWS_ACCESS_KEY_ID"]


def test_the_image_gives_its_user_a_media_root_for_local_storage():
    # Without UPLOAD_STORAGE=s3 (one container, or a volume of its own), uploads go there.
    user = dockerfile_instructions("USER")[-1]
    image_env = " ".join(dockerfile_instructions("ENV")).split()
    media_root = next(v.split("=", 1)[1] for v in image_env if v.startswith("MEDIA_ROOT="))

    assert any(
        f"-o {user}" in command and command.split()[-1] == media_root
        for command in dockerfile_instructions("RUN")
    ), f"the image never gives {user} a {media_root} directory, so a fresh volume is root's"


@pytest.mark.parametrize("name", MILVUS_SERVICES)
def test_milvus_and_its_stores_start_only_with_the_milvus_profile(services, name):
    assert services[name]["profiles"] == ["milvus"]


@pytest.mark.parametrize("name", ["postgres", "redis", *CONSOLE_SERVICES])
def test_console_starts_without_any_profile(services, name):
    assert "profiles" not in services[name]


def test_milvus_starts_after_healthy_etcd_and_minio(services):
    depends_on = services["milvus"]["depends_on"]

    assert depends_on["etcd"]["condition"] == "service_healthy"
    assert depends_on["minio"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", CONSOLE_SERVICES)
@pytest.mark.parametrize("variable", ["SECRET_KEY", "FIELD_ENCRYPTION_KEY"])
def test_secrets_must_come_from_the_environment(services, name, variable):
    value = services[name]["environment"][variable]

    assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", value), (
        f"{name}: {variable} must be ${{{variable}:?message}}, so compose refuses to start "
        f"without it; got {value!r}"
    )


@pytest.mark.parametrize("name", CONSOLE_SERVICES)
def test_console_services_run_with_production_hardening(services, name):
    assert services[name]["environment"]["PRODUCTION"] == "true"


def test_image_serves_the_console_with_gunicorn_on_port_8000(services):
    command = exec_form(dockerfile_instructions("CMD")[-1])

    assert command[0] == "gunicorn"
    assert "console.wsgi:application" in command
    assert command[command.index("--bind") + 1] == "0.0.0.0:8000"
    assert "command" not in services["web"], "web should run the image's gunicorn command"
    assert any(port.endswith(":8000") for port in services["web"]["ports"])


def test_image_runs_as_an_unprivileged_user():
    user = dockerfile_instructions("USER")[-1]

    assert user not in ("root", "0")


def test_image_and_web_service_check_health_at_healthz_the_same_way(services):
    options_and_command = dockerfile_instructions("HEALTHCHECK")[-1]
    image_check = exec_form(options_and_command[options_and_command.index("CMD [") + 4 :])
    web_check = healthcheck_command(services["web"])

    assert web_check[0] == "CMD"
    assert web_check[1:] == image_check
    assert "http://127.0.0.1:8000/healthz" in image_check[-1]
    compile(image_check[-1], "healthcheck", "exec")


def test_worker_health_is_a_ping_of_its_own_celery_node(services):
    worker = services["worker"]
    command = " ".join(healthcheck_command(worker))

    assert worker["command"][:4] == ["celery", "-A", "console", "worker"]
    assert "celery -A console inspect ping" in command
    # `$$` is Compose's escape: the container's shell, not Compose, expands HOSTNAME.
    assert "celery@$$HOSTNAME" in command


def test_env_files_never_reach_the_image():
    ignored = (PROJECT_DIR / ".dockerignore").read_text().splitlines()

    assert ".env" in ignored
