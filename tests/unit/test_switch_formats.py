"""Editors of connection_switch: one setting changes, every other byte stays; there and back is byte for byte."""

from __future__ import annotations

import io
import json
import os
import pwd

import pytest
import yaml

from ansible_collections.dualboot.db.plugins.module_utils import pgbouncer, switch_formats
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput
from ansible_collections.dualboot.db.plugins.module_utils.switch_formats import MASK, Masker, edit_dotenv, edit_ini, edit_json, edit_yaml

BLUE = "postgresql://app:s3cret@db1:5432/shop_blue"
GREEN = "postgresql://app:s3cret@db1:5432/shop_green"


def there_and_back(edit, text, *args, new):
    changed, old = edit(text, *args, new)[:2]
    back = edit(changed, *args, old)[0]
    return changed, old, back


# --- dotenv ------------------------------------------------------------------------------------

DOTENV = """# shop settings
export DATABASE_URL="postgresql://app:s3cret@db1:5432/shop_blue"  # live
SECRET_KEY='k#1 $x'
EMPTY=
MULTI="line one
line two"
LAST=plain # trailing comment
"""


def test_dotenv_there_and_back_is_byte_for_byte():
    changed, old, back = there_and_back(edit_dotenv, DOTENV, "DATABASE_URL", new=GREEN)
    assert old == BLUE
    assert changed == DOTENV.replace("shop_blue", "shop_green")
    assert back == DOTENV


@pytest.mark.parametrize("key", ["LAST", "EMPTY", "SECRET_KEY"])
@pytest.mark.parametrize("new", ["postgresql://h/db", "needs 'quotes' here"])
def test_dotenv_other_keys_and_styles_round_trip(key, new):
    _changed, _old, back = there_and_back(edit_dotenv, DOTENV, key, new=new)
    assert back == DOTENV


def test_dotenv_multi_line_value_is_replaced_whole():
    new, old = edit_dotenv(DOTENV, "MULTI", "one line")
    assert old == "line one\nline two"
    assert "MULTI='one line'\nLAST=plain # trailing comment\n" in new
    # Written back, the value comes out escaped on one line: equal for every reader, not byte for byte.
    assert edit_dotenv(new, "MULTI", old)[0] == DOTENV.replace('"line one\nline two"', '"line one\\nline two"')


VALUES = [GREEN, "p w", "it's", "dollar $HOME", 'quote " and \\ backslash', "new\nline", "hash#tag", "x #y", "", "ünïcode", "a=b;c"]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("style", ["", "'", '"'])
def test_dotenv_values_read_back_by_python_dotenv(value, style):
    dotenv = pytest.importorskip("dotenv", reason="python-dotenv is the reference reader (test-requirements.txt)")
    original = f"A=1\nKEY={style}old{style}\nB=2\n"
    new_text, old = edit_dotenv(original, "KEY", value)
    assert old == "old"
    read = dotenv.dotenv_values(stream=io.StringIO(new_text), interpolate=False)
    assert read == {"A": "1", "KEY": value, "B": "2"}
    # With interpolation on (python-dotenv's default) the value is still read as written.
    assert dotenv.dotenv_values(stream=io.StringIO(new_text))["KEY"] == value


def test_dotenv_quoting_rules():
    assert switch_formats.dotenv_quote("postgresql://a:b@h:1/d") == "postgresql://a:b@h:1/d"
    assert switch_formats.dotenv_quote("with space") == "'with space'"
    assert switch_formats.dotenv_quote("a$b") == "'a$b'"  # single quotes: no interpolation in docker compose
    assert switch_formats.dotenv_quote("it's") == '"it\'s"'
    assert switch_formats.dotenv_quote("x", prefer='"') == '"x"'  # the line's own style is kept
    with pytest.raises(InvalidInput, match=r"\$\{"):
        switch_formats.dotenv_quote("pa${ss}")
    with pytest.raises(InvalidInput, match="python-dotenv and docker compose"):
        switch_formats.dotenv_quote("it's $5")


def test_dotenv_missing_and_duplicate_keys_are_refused():
    with pytest.raises(InvalidInput, match=r"DB_URL is not set .*keys there: A, B"):
        edit_dotenv("A=1\nB=2\n", "DB_URL", "x")
    with pytest.raises(InvalidInput, match="set 2 times"):
        edit_dotenv("A=1\nA=2\n", "A", "x")


def test_dotenv_commented_line_is_not_the_setting():
    text = "#DATABASE_URL=old\nDATABASE_URL=live\n"
    new, old = edit_dotenv(text, "DATABASE_URL", "new")
    assert (new, old) == ("#DATABASE_URL=old\nDATABASE_URL=new\n", "live")


def test_dotenv_crlf_line_endings_are_kept():
    text = "A=1\r\nDATABASE_URL=x\r\nB=2\r\n"
    new, _old = edit_dotenv(text, "DATABASE_URL", "y")
    assert new == "A=1\r\nDATABASE_URL=y\r\nB=2\r\n"


# --- INI -----------------------------------------------------------------------------------------

INI = """; application settings
[DEFAULT]
timeout = 5

[database]
Host = db1
port=5432
name : shop_blue{TRAILING}
url = postgresql://app@db1/shop_blue ; not a comment for configparser

[cache]
name = redis
""".replace("{TRAILING}", "   ")


def test_ini_there_and_back_is_byte_for_byte():
    changed, old, back = there_and_back(edit_ini, INI, "database", "name", new="shop_green")
    assert old == "shop_blue"
    assert "name : shop_green   \n" in changed
    assert "[cache]\nname = redis" in changed
    assert back == INI


def test_ini_keys_match_case_insensitively_like_configparser():
    new, old = edit_ini(INI, "database", "host", "db2")
    assert old == "db1" and "Host = db2\n" in new


def test_ini_errors():
    with pytest.raises(InvalidInput, match=r"section \[db\] is not in this INI file \(sections: database, cache\)"):
        edit_ini(INI, "db", "name", "x")
    with pytest.raises(InvalidInput, match=r"key user is not set in section \[database\]"):
        edit_ini(INI, "database", "user", "x")
    with pytest.raises(InvalidInput, match="cannot be parsed"):
        edit_ini("no section header\nkey = value\n", "database", "key", "x")
    with pytest.raises(InvalidInput, match="line breaks"):
        edit_ini(INI, "database", "name", "a\nb")


# --- JSON ----------------------------------------------------------------------------------------

JSON = """{
  "name": "shop",
  "database": {
    "url": "postgresql://app:s3cret@db1:5432/shop_blue",
    "port": 5432,
    "replicas": ["db2", {"url": "postgresql://db3/shop_blue"}],
    "label": "caf\\u00e9"
  },
  "url": "top-level, not the one"
}
"""


def test_json_there_and_back_is_byte_for_byte():
    changed, old, back = there_and_back(edit_json, JSON, "database.url", new=GREEN)
    assert old == BLUE
    assert changed == JSON.replace("s3cret@db1:5432/shop_blue", "s3cret@db1:5432/shop_green")
    assert back == JSON


def test_json_list_paths_numbers_and_escapes():
    new, old = edit_json(JSON, ["database", "replicas", 1, "url"], "postgresql://db3/shop_green")
    assert old == "postgresql://db3/shop_blue" and json.loads(new)["database"]["replicas"][1]["url"].endswith("shop_green")
    new, old = edit_json(JSON, "database.port", "6432")
    assert old == 5432 and '"port": 6432,' in new  # a number stays a number
    new, old = edit_json(JSON, "database.label", "thé")
    assert '"label": "th\\u00e9"' in new  # the file's escaping style is kept
    assert edit_json(new, "database.label", old)[0] == JSON


def test_json_errors_name_the_path():
    with pytest.raises(InvalidInput, match=r"database\.url\.host goes through a non-object: database\.url is str"):
        edit_json(JSON, "database.url.host", "x")
    with pytest.raises(InvalidInput, match=r"database has no key 'uri' \(keys: url, port, replicas, label\)"):
        edit_json(JSON, "database.uri", "x")
    with pytest.raises(InvalidInput, match="names a mapping"):
        edit_json(JSON, "database", "x")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        edit_json('{"a": 1,}', "a", "x")
    with pytest.raises(InvalidInput, match="appears twice"):
        edit_json('{"a": 1, "a": 2}', "a", "3")
    with pytest.raises(InvalidInput, match="is a list of 2 items"):
        edit_json('{"a": [1, 2]}', "a.5", "3")


# --- YAML ----------------------------------------------------------------------------------------

YAML = """# shop configuration
production:
  database:
    url: postgresql://app:s3cret@db1:5432/shop_blue   # the live entry
    name: 'shop_blue'
    port: 5432
    hosts: [db1, "db2"]
  cache: {host: redis, db: 0}
development:
  database:
    url: "postgresql://localhost/shop_dev"
"""


@pytest.mark.parametrize(
    "key,new",
    [
        ("production.database.url", GREEN),
        ("production.database.name", "shop_green"),
        ("production.database.name", "it's green"),
        ("development.database.url", "postgresql://localhost/shop_dev2"),
        ("production.database.hosts.1", "db3"),
        ("production.cache.host", "redis2, second"),
        (["production", "database", "url"], "yes"),
        ("production.database.url", "a #b: c"),
    ],
)
def test_yaml_edits_in_place_and_round_trips(key, new):
    changed, old, reformatted = edit_yaml(YAML, key, new)
    assert not reformatted
    data = yaml.safe_load(changed)
    node = data
    for seg in switch_formats.parse_path(key):
        node = node[int(seg)] if isinstance(node, list) else node[seg]
    assert node == new
    assert changed.count("\n") == YAML.count("\n") and "# the live entry" in changed and "# shop configuration" in changed
    back = edit_yaml(changed, key, old)[0]
    assert back == YAML


def test_yaml_number_stays_a_number_and_text_stays_text():
    new, old = edit_yaml(YAML, "production.database.port", "6432")[:2]
    assert old == 5432 and yaml.safe_load(new)["production"]["database"]["port"] == 6432
    new = edit_yaml(YAML, "production.database.name", "5432")[0]
    assert yaml.safe_load(new)["production"]["database"]["name"] == "5432"


def test_yaml_dates_and_empty_values_are_edited_in_place():
    text = "released: 2026-11-21\ndb:\n  url:\n  name: x\n"
    new, old, reformatted = edit_yaml(text, "db.url", "postgresql://db2/shop")
    assert (old, reformatted) == (None, False)
    assert new == "released: 2026-11-21\ndb:\n  url: postgresql://db2/shop\n  name: x\n"


def test_yaml_block_scalar_falls_back_to_reserializing():
    text = "db:\n  url: |\n    postgresql://old\n# comment\nother: 1\n"
    new, old, reformatted = edit_yaml(text, "db.url", "postgresql://new")
    assert reformatted and old == "postgresql://old\n"
    assert yaml.safe_load(new) == {"db": {"url": "postgresql://new"}, "other": 1}


def test_yaml_errors():
    with pytest.raises(InvalidInput, match=r"production\.database\.url\.x goes through a non-object"):
        edit_yaml(YAML, "production.database.url.x", "v")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        edit_yaml("a: [1, 2\n", "a", "v")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        edit_yaml("a: 1\n---\nb: 2\n", "a", "v")
    with pytest.raises(InvalidInput, match="appears twice"):
        edit_yaml("a: 1\na: 2\n", "a", "v")


# --- templates and masking ----------------------------------------------------------------------

ENTRY = {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_green"}


def test_template_renders_entry_and_percent_encodes_password():
    tpl = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
    assert switch_formats.render(tpl, ENTRY, "p@ss:w/rd") == "postgresql://app:p%40ss%3Aw%2Frd@db1:5432/shop_green"
    with pytest.raises(InvalidInput, match=r"\{password\} is not set.*pass password"):
        switch_formats.render(tpl, ENTRY, None)
    with pytest.raises(InvalidInput, match=r"\{login_dbname\} is not set.*login_db, login_host"):
        switch_formats.render("{login_dbname}", ENTRY, None)
    with pytest.raises(InvalidInput, match="not a plain name"):
        switch_formats.render("{login_host.__class__}", ENTRY, None)
    with pytest.raises(InvalidInput, match="holds a secret"):
        switch_formats.render("{login_host}", {**ENTRY, "login_password": "x"}, None)


def test_masker_hides_the_secret_in_every_encoding_and_unknown_uri_passwords():
    secret = "p@ss'w\"rd"
    mask = Masker(secret)
    for form in (secret, "p%40ss%27w%22rd", json.dumps(secret)[1:-1], switch_formats._dq_escape(secret), secret.replace("'", "''")):
        assert mask(f"x{form}y") == f"x{MASK}y"
    assert mask("postgresql://app:oldsecret@db1/shop") == f"postgresql://app:{MASK}@db1/shop"
    assert mask("host=db1 password=oldsecret dbname=x") == f"host=db1 password={MASK} dbname=x"
    assert mask(5432) == 5432


def test_diff_holds_only_the_changed_lines():
    before, after = switch_formats.changed_lines("A=1\nSECRET=zzz\nB=2\n", "A=1\nSECRET=zzz\nB=3\n")
    assert (before, after) == ("B=2\n", "B=3\n")


# --- files: switch(), symlinks, owner and mode --------------------------------------------------


def _switch(path, **params):
    base = {"format": "dotenv", "path": str(path), "key": "DATABASE_URL", "backup": False}
    base.update(params)
    return switch_formats.switch(base, check_mode=params.pop("check_mode", False))


def test_switch_keeps_owner_group_mode_and_masks_everything(tmp_path):
    env = tmp_path / ".env"
    env.write_text(DOTENV)
    os.chmod(env, 0o640)
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() == 0:
        os.chown(env, nobody.pw_uid, nobody.pw_gid)
    result = _switch(
        env,
        entry=ENTRY,
        template="postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}",
        password="s3cret",
        backup=True,
    )
    assert result["changed"]
    assert env.read_text() == DOTENV.replace("shop_blue", "shop_green")
    st = os.stat(env)
    assert oct(st.st_mode & 0o777) == "0o640"
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    backup = result["backup_file"]
    assert open(backup).read() == DOTENV and oct(os.stat(backup).st_mode & 0o777) == "0o600"
    shown = json.dumps(result)
    assert "s3cret" not in shown
    assert result["previous_value"] == f"postgresql://app:{MASK}@db1:5432/shop_blue"
    assert result["diff"]["after"] == f'export DATABASE_URL="postgresql://app:{MASK}@db1:5432/shop_green"  # live\n'
    assert [p.name for p in tmp_path.iterdir() if "dualboot" in p.name] == []  # no temporary file left
    again = _switch(env, value=GREEN)
    assert not again["changed"]


def test_switch_check_mode_writes_nothing(tmp_path):
    env = tmp_path / ".env"
    env.write_text(DOTENV)
    before = os.stat(env)
    result = _switch(env, value=GREEN, check_mode=True)
    assert result["changed"] and env.read_text() == DOTENV and os.stat(env).st_mtime_ns == before.st_mtime_ns
    assert "would switch" in result["msg"]


def test_switch_edits_a_symlinked_file_where_it_lives(tmp_path):
    real = tmp_path / "real.env"
    real.write_text("DATABASE_URL=a\n")
    link = tmp_path / ".env"
    link.symlink_to(real.name)
    _switch(link, value="b")
    assert link.is_symlink() and real.read_text() == "DATABASE_URL=b\n"


@pytest.mark.parametrize(
    "fmt,content,key,match",
    [
        ("dotenv", None, "DATABASE_URL", "does not exist"),
        ("json", '{"db": ', "db.url", "not valid JSON"),
        ("json", '{"db": "x"}', "db.url", "goes through a non-object"),
        ("yaml", "db: [", "db.url", "not valid YAML"),
        ("ini", "[db]\nurl=x\n", "nope", "not set in section"),
    ],
)
def test_switch_bad_input_leaves_the_file_untouched(tmp_path, fmt, content, key, match):
    path = tmp_path / "conf"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInput, match=match):
        _switch(path, format=fmt, key=key, value="new", section="db")
    if content is None:
        assert not path.exists()
    else:
        assert path.read_text() == content
        assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]


def test_symlink_retarget_round_trip_and_refusals(tmp_path):
    (tmp_path / "blue.conf").write_text("blue")
    (tmp_path / "green.conf").write_text("green")
    link = tmp_path / "database.conf"
    link.symlink_to("blue.conf")
    result = _switch(link, format="symlink", value="green.conf", backup=True)
    assert result["changed"] and os.readlink(link) == "green.conf" and link.read_text() == "green"
    assert result["previous_value"] == "blue.conf" and os.readlink(result["backup_file"]) == "blue.conf"
    assert not _switch(link, format="symlink", value="green.conf")["changed"]
    _switch(link, format="symlink", value="blue.conf")
    assert os.readlink(link) == "blue.conf"
    with pytest.raises(InvalidInput, match="does not exist"):
        _switch(link, format="symlink", value="red.conf")
    assert os.readlink(link) == "blue.conf"
    with pytest.raises(InvalidInput, match="is not a symlink"):
        _switch(tmp_path / "blue.conf", format="symlink", value="green.conf")
    assert (tmp_path / "blue.conf").read_text() == "blue"


# --- pgbouncer.ini [databases] ---------------------------------------------------------------------

PGB = """;; pgbouncer
[databases]
shop = host=db1 port=5432 dbname=shop_blue pool_size=20 user=app
other = host=db1 dbname=other
quoted = host='/var/run/postgresql' dbname='my db'

[pgbouncer]
listen_port = 6432
"""


def test_pgbouncer_line_keeps_other_parameters_and_round_trips():
    new, old = pgbouncer.edit_databases(PGB, "shop", {"host": "db2", "port": "5433", "dbname": "shop_green"})
    assert old == "host=db1 port=5432 dbname=shop_blue pool_size=20 user=app"
    assert "shop = host=db2 port=5433 dbname=shop_green pool_size=20 user=app\n" in new
    back = pgbouncer.edit_databases(new, "shop", {"host": "db1", "port": "5432", "dbname": "shop_blue"})[0]
    assert back == PGB


def test_pgbouncer_line_quoting_and_added_parameters():
    new = pgbouncer.edit_databases(PGB, "other", {"host": "db2", "port": "5433", "dbname": "other"})[0]
    assert "other = host=db2 dbname=other port=5433\n" in new
    new, old = pgbouncer.edit_databases(PGB, "quoted", {"dbname": "it's"})
    assert old == "host='/var/run/postgresql' dbname='my db'"
    assert "quoted = host='/var/run/postgresql' dbname='it''s'\n" in new
    assert {p["key"]: p["value"] for p in pgbouncer.parse_connstr("host='/run/pg' dbname='it''s'")} == {"host": "/run/pg", "dbname": "it's"}


def test_pgbouncer_file_errors():
    with pytest.raises(InvalidInput, match="alias nope is not defined"):
        pgbouncer.edit_databases(PGB, "nope", {"dbname": "x"})
    with pytest.raises(InvalidInput, match=r"no \[databases\] section"):
        pgbouncer.edit_databases("[pgbouncer]\nlisten_port=1\n", "shop", {"dbname": "x"})
    with pytest.raises(InvalidInput, match="entry has no login_db"):
        pgbouncer.desired_params({"entry": {"login_host": "db1"}})
    assert pgbouncer.desired_params({"entry": ENTRY}) == {"host": "db1", "port": "5432", "dbname": "shop_green"}
