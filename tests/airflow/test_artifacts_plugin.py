from fastapi.testclient import TestClient

from tune_serve import artifacts
from tune_serve.links import artifact_url


def test_viewer_serves_reports_and_listings_under_the_storage_root_only(tmp_path, monkeypatch):
    root = tmp_path / "storage"
    (root / "runs" / "r" / "eval" / "0").mkdir(parents=True)
    (root / "runs" / "r" / "eval" / "0" / "report.html").write_text("<h1>rank 0</h1>")
    (tmp_path / "secret.txt").write_text("no")
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(root))
    client = TestClient(artifacts.app)

    report = client.get("/artifacts", params={"uri": str(root / "runs/r/eval/0/report.html")})
    assert report.status_code == 200 and report.text == "<h1>rank 0</h1>"
    assert report.headers["content-type"].startswith("text/html")
    listing = client.get("/artifacts", params={"uri": str(root / "runs/r/eval")})
    assert "0/</a>" in listing.text
    assert client.get("/artifacts", params={"uri": str(tmp_path / "secret.txt")}).status_code == 403
    assert client.get("/artifacts", params={"uri": f"{root}/../secret.txt"}).status_code == 403
    assert client.get("/artifacts", params={"uri": str(root / "runs/none")}).status_code == 404


def test_links_point_to_the_console_for_gcs_and_the_viewer_otherwise():
    assert artifact_url("gs://bucket/runs/r/eval/0/report.html") == \
        "https://console.cloud.google.com/storage/browser/bucket/runs/r/eval/0/report.html"
    assert artifact_url("/data/runs/r/report.html").endswith("/tune-serve/artifacts?uri=%2Fdata%2Fruns%2Fr%2Freport.html")
    assert artifact_url(None) == ""
