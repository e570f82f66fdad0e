from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils import mongodb, postgresql


def test_side_overrides_top_level_and_password_stays_out_of_labels():
    params = {k: v.get("default") for k, v in postgresql.connection_spec().items()}
    params.update(
        login_host="db1", login_password="s3cret", login_db="app", target={"login_host": "db2", "login_db": None, "login_port": 6432}
    )
    src = postgresql.from_params(params)
    dst = postgresql.from_params(params, side="target")
    assert (src.host, src.port, src.dbname) == ("db1", 5432, "app")
    assert (dst.host, dst.port, dst.dbname) == ("db2", 6432, "app")
    assert dst.password == "s3cret"
    assert "s3cret" not in repr(dst) and "s3cret" not in dst.label()
    assert dst.env()["PGPASSWORD"] == "s3cret" and "s3cret" not in " ".join(dst.env().keys())
    assert not src.same_server(dst)


def test_unix_socket_wins_over_host():
    c = postgresql.PgConnection(host="db1", unix_socket="/run/postgresql")
    assert c.kwargs()["host"] == "/run/postgresql" and c.env()["PGHOST"] == "/run/postgresql"


def test_mongodb_uri_is_redacted_and_direct_connection_not_forced():
    params = {k: v.get("default") for k, v in mongodb.connection_spec().items()}
    params["login_uri"] = "mongodb://app:pa55@db1:27017/?replicaSet=rs0"
    conn = mongodb.from_params(params)
    assert conn.label() == "mongodb://app:***@db1:27017/?replicaSet=rs0"
    uri, kw = conn.client_args()
    assert "directConnection" not in kw and uri == params["login_uri"]
    assert "pa55" not in repr(conn)
