"""The artifact viewer in-process: which URIs it serves and how. Who may call it is proven
through a real API server with the real auth manager (test_artifacts_auth.py); here the
auth dependency is replaced by an allowed caller."""
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from tune_serve.web import artifacts
from tune_serve.workflow.links import artifact_url

RUN_ID = "manual__2026-11-29T08:00:00+00:00"  # Airflow run ids contain `:` and `+`


@pytest.fixture
def tree(tmp_path):
    """{tmp}/storage/runs/{RUN_ID}/eval/0/report.html, and {tmp}/secret.txt outside the root."""
    root = tmp_path / "storage"
    report = root / "runs" / RUN_ID / "eval" / "0" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<h1>rank 0</h1>")
    (tmp_path / "secret.txt").write_text("SECRET")
    return root


@pytest.fixture
def client(tree, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tree))
    artifacts.app.dependency_overrides[artifacts.require_task_log_access] = lambda: None
    yield TestClient(artifacts.app)
    artifacts.app.dependency_overrides.clear()


def get(client, uri):
    return client.get("/artifacts", params={"uri": uri})


def test_serves_reports_and_listings_under_the_storage_root(client, tree):
    report = get(client, f"{tree}/runs/{RUN_ID}/eval/0/report.html")
    assert report.status_code == 200 and report.text == "<h1>rank 0</h1>"
    assert report.headers["content-type"].startswith("text/html")
    listing = get(client, f"{tree}/runs/{RUN_ID}/eval")
    assert "0/</a>" in listing.text
    assert get(client, f"{tree}/runs/none").status_code == 404


@pytest.mark.parametrize("uri", [
    "{tmp}/secret.txt",
    "{root}/../secret.txt",
    "{root}/runs/../../secret.txt",
    # A scheme-looking component inside a path is just a component; `..` after it still counts.
    "{root}/runs/a://../../../secret.txt",
    "{root}/runs/a:/../../../secret.txt",
    "{root}-evil/secret.txt",  # a string prefix of the root is not a path under it
    "file://{root}/../secret.txt",
    "file://localhost{root}/../../secret.txt",
    "gs://bucket{root}/runs",  # another scheme
])
def test_refuses_everything_outside_the_root(client, tree, uri):
    response = get(client, uri.format(root=tree, tmp=tree.parent))
    assert response.status_code == 403, response.text
    assert "SECRET" not in response.text


def test_percent_encoded_dots_are_decoded_once_and_then_checked(client, tree):
    # Sent as %2e%2e: the server sees `..` and refuses.
    once = client.get(f"/artifacts?uri={tree}/%2e%2e/secret.txt")
    assert once.status_code == 403
    # Sent as %252e%252e: the server sees a literal `%2e%2e` folder name, which is not `..`.
    twice = client.get(f"/artifacts?uri={tree}/%252e%252e/secret.txt")
    assert twice.status_code == 404 and "SECRET" not in twice.text


@pytest.mark.parametrize("uri", ["relative/path", "runs/../secret.txt", "file://evil.example{root}/x", "s3://"])
def test_what_is_no_absolute_uri_is_a_clear_400(client, tree, uri):
    response = get(client, uri.format(root=tree))
    assert response.status_code == 400 and "uri" in response.json()["detail"]


def test_symlinks_are_followed_before_the_check(client, tree):
    run = tree / "runs" / RUN_ID
    (run / "leak.txt").symlink_to(tree.parent / "secret.txt")
    (run / "up").symlink_to(tree.parent, target_is_directory=True)
    (run / "inside.html").symlink_to(run / "eval" / "0" / "report.html")
    for uri in (run / "leak.txt", run / "up" / "secret.txt", run / "up"):
        response = get(client, str(uri))
        assert response.status_code == 403 and "SECRET" not in response.text
    assert get(client, str(run / "inside.html")).text == "<h1>rank 0</h1>"


def test_a_file_uri_root_serves_paths_and_file_uris_under_it(client, tree, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", f"file://{tree}")
    report = f"{tree}/runs/{RUN_ID}/eval/0/report.html"
    assert get(client, report).text == "<h1>rank 0</h1>"
    assert get(client, f"file://{report}").text == "<h1>rank 0</h1>"
    assert get(client, f"file://{tree}/../secret.txt").status_code == 403


def test_stored_html_cannot_run_script_in_airflows_origin(client, tree):
    evil = tree / "runs" / RUN_ID / "evil.html"
    evil.write_text("<script>fetch('/api/v2/variables')</script>")
    for uri in (evil, evil.parent, tree / "runs" / "none"):  # a file, a listing, an error
        response = get(client, str(uri))
        policy = response.headers["content-security-policy"]
        assert policy.split(";")[0] == "sandbox" and "default-src 'none'" in policy
        assert "script-src" not in policy and "allow-scripts" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"


def test_large_files_are_streamed_not_read_whole(client, tree, monkeypatch):
    big = tree / "runs" / RUN_ID / "big.txt"
    big.write_bytes(b"x" * (3 << 20))
    monkeypatch.setattr(type(big), "read_bytes", lambda self: pytest.fail("read whole"))
    response = get(client, str(big))
    assert response.status_code == 200 and len(response.content) == 3 << 20
    assert response.headers["content-length"] == str(3 << 20)


def test_remote_uris_keep_the_roots_bucket_and_prefix(monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", "gs://bucket/tune")
    _, ok = artifacts.resolve(f"gs://bucket/tune/runs/{RUN_ID}/eval/0/report.html")
    assert str(ok) == f"gs://bucket/tune/runs/{RUN_ID}/eval/0/report.html"
    assert str(artifacts.resolve("gs://bucket/tune/runs/a/../b")[1]) == "gs://bucket/tune/runs/b"
    for uri in ("gs://bucket/tune/../other/x", "gs://bucket/tune-evil/x", "gs://other/tune/runs/x",
                "gs://bucket/tune/runs/a://../../../x", "file:///tune/runs/x", "/tune/runs/x",
                "gcs://bucket/tune/runs/x"):
        with pytest.raises(HTTPException) as refused:
            artifacts.resolve(uri)
        assert refused.value.status_code == 403, uri
    with pytest.raises(HTTPException) as encoded:
        artifacts.resolve("gs://bucket/tune/runs/%2e%2e/%2e%2e/x")
    assert encoded.value.status_code == 400


def test_links_point_to_the_console_for_gcs_and_the_viewer_otherwise(monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert artifact_url("gs://bucket/runs/r/eval/0/report.html") == \
        "https://console.cloud.google.com/storage/browser/bucket/runs/r/eval/0/report.html"
    assert artifact_url("/data/runs/r/report.html").endswith("/tune-serve/artifacts?uri=%2Fdata%2Fruns%2Fr%2Freport.html")
    assert artifact_url(None) == ""
    # an emulator's bucket is unknown to the console: the viewer reads it
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")
    assert artifact_url("gs://bucket/runs/r/eval/0/report.html").endswith(
        "/tune-serve/artifacts?uri=gs%3A%2F%2Fbucket%2Fruns%2Fr%2Feval%2F0%2Freport.html")


def test_task_links_open_the_run_view():
    from tune_serve.workflow.links import candidate_url, run_view_url

    assert run_view_url("tune_train_serve", RUN_ID).endswith(
        "/dags/tune_train_serve/runs/manual__2026-11-29T08%3A00%3A00%2B00%3A00/plugin/tune-serve-run")
    assert candidate_url(RUN_ID, 1).endswith("/tune-serve-view/runs/manual__2026-11-29T08%3A00%3A00%2B00%3A00#candidate-1")
