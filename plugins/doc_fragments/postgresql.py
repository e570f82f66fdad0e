# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """PostgreSQL connection options, mirrored by module_utils/postgresql.py connection_spec()."""

    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the PostgreSQL server. Empty means the local Unix socket.
    type: str
    default: ''
    aliases: [host, login_hostname]
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
    aliases: [login, user]
  login_password:
    description:
      - Password of O(login_user). Passed to client tools through the environment, never on a command line,
        and never returned.
    type: str
    default: ''
  login_unix_socket:
    description: Directory of the server's Unix socket; overrides O(login_host).
    type: str
    default: ''
  login_db:
    description: Database to connect to.
    type: str
    aliases: [db, database]
  ssl_mode:
    description: libpq C(sslmode) of the connection.
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
    default: prefer
  ca_cert:
    description: File with the certificate authorities that sign the server certificate.
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description: Client certificate file.
    type: path
  ssl_key:
    description: Private key file of O(ssl_cert).
    type: path
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
  connect_params:
    description: "Further libpq connection parameters, for example C({target_session_attrs: read-write})."
    type: dict
    default: {}
requirements:
  - psycopg >= 3.1 on the host running the task
"""

    ENDPOINTS = r"""
options:
  source:
    description:
      - Connection of the source side. Any option left out is taken from the top-level connection options.
    type: dict
    suboptions:
      login_host:
        description: Host of the source server; empty means the local Unix socket.
        type: str
        aliases: [host, login_hostname]
      login_port:
        description: Port of the source server.
        type: int
        aliases: [port]
      login_user:
        description: Role to connect to the source as.
        type: str
        aliases: [login, user]
      login_password:
        description: Password of the source role (never returned).
        type: str
      login_unix_socket:
        description: Unix socket directory of the source server.
        type: str
      login_db:
        description: Database of the source.
        type: str
        aliases: [db, database]
      ssl_mode:
        description: libpq C(sslmode) for the source.
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Certificate authorities of the source server certificate.
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate for the source.
        type: path
      ssl_key:
        description: Private key of the client certificate for the source.
        type: path
      connect_timeout:
        description: Seconds to wait for the source connection.
        type: int
      connect_params:
        description: Further libpq connection parameters for the source.
        type: dict
  target:
    description:
      - Connection of the target side, with the same fallbacks as O(source).
    type: dict
    suboptions:
      login_host:
        description: Host of the target server; empty means the local Unix socket.
        type: str
        aliases: [host, login_hostname]
      login_port:
        description: Port of the target server.
        type: int
        aliases: [port]
      login_user:
        description: Role to connect to the target as.
        type: str
        aliases: [login, user]
      login_password:
        description: Password of the target role (never returned).
        type: str
      login_unix_socket:
        description: Unix socket directory of the target server.
        type: str
      login_db:
        description: Database of the target.
        type: str
        aliases: [db, database]
      ssl_mode:
        description: libpq C(sslmode) for the target.
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Certificate authorities of the target server certificate.
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate for the target.
        type: path
      ssl_key:
        description: Private key of the client certificate for the target.
        type: path
      connect_timeout:
        description: Seconds to wait for the target connection.
        type: int
      connect_params:
        description: Further libpq connection parameters for the target.
        type: dict
"""
