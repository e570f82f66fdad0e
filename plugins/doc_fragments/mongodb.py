# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """MongoDB connection options, mirrored by module_utils/mongodb.py connection_spec()."""

    DOCUMENTATION = r"""
options:
  login_uri:
    description:
      - MongoDB connection string. When set, the host and port options are ignored; user, password and
        TLS options still apply. Treated as a secret (it may hold a password).
    type: str
    aliases: [uri]
  login_host:
    description: Host of the MongoDB server.
    type: str
    default: localhost
  login_port:
    description: Port of the MongoDB server.
    type: int
    default: 27017
  login_user:
    description: User to authenticate as. Without it no authentication is attempted.
    type: str
  login_password:
    description: Password of O(login_user). Never returned or logged.
    type: str
  login_database:
    description: Authentication database of O(login_user).
    type: str
    default: admin
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  tls_ca_file:
    description: Certificate authorities file for TLS.
    type: path
  tls_certificate_key_file:
    description: Client certificate and key file for TLS.
    type: path
  tls_allow_invalid_certificates:
    description: Accept any server certificate (testing only).
    type: bool
    default: false
  direct_connection:
    description:
      - Connect to the given host only instead of discovering the replica set. Unset leaves pymongo's
        own default (and the URI's C(directConnection)) in force.
    type: bool
  replica_set:
    description: Name of the replica set to connect to.
    type: str
  connect_timeout:
    description: Seconds to wait for the server.
    type: int
    default: 10
  connection_options:
    description: Further keyword options for C(pymongo.MongoClient).
    type: dict
    default: {}
requirements:
  - pymongo >= 4.0 on the host running the task
"""

    ENDPOINTS = r"""
options:
  source:
    description:
      - Connection of the source side. Any option left out is taken from the top-level connection options.
    type: dict
    suboptions:
      login_uri:
        description: MongoDB connection string of the source (a secret when it holds a password).
        type: str
        aliases: [uri]
      login_host:
        description: Host of the source server.
        type: str
      login_port:
        description: Port of the source server.
        type: int
      login_user:
        description: User to authenticate as on the source.
        type: str
      login_password:
        description: Password of the source user (never returned).
        type: str
      login_database:
        description: Authentication database of the source user.
        type: str
      tls:
        description: Connect to the source with TLS.
        type: bool
      tls_ca_file:
        description: Certificate authorities file for the source.
        type: path
      tls_certificate_key_file:
        description: Client certificate and key file for the source.
        type: path
      tls_allow_invalid_certificates:
        description: Accept any source server certificate (testing only).
        type: bool
      direct_connection:
        description: Connect to the given source host only instead of discovering the replica set.
        type: bool
      replica_set:
        description: Replica set name of the source.
        type: str
      connect_timeout:
        description: Seconds to wait for the source server.
        type: int
      connection_options:
        description: Further keyword options for C(pymongo.MongoClient) on the source.
        type: dict
  target:
    description:
      - Connection of the target side, with the same fallbacks as O(source).
    type: dict
    suboptions:
      login_uri:
        description: MongoDB connection string of the target (a secret when it holds a password).
        type: str
        aliases: [uri]
      login_host:
        description: Host of the target server.
        type: str
      login_port:
        description: Port of the target server.
        type: int
      login_user:
        description: User to authenticate as on the target.
        type: str
      login_password:
        description: Password of the target user (never returned).
        type: str
      login_database:
        description: Authentication database of the target user.
        type: str
      tls:
        description: Connect to the target with TLS.
        type: bool
      tls_ca_file:
        description: Certificate authorities file for the target.
        type: path
      tls_certificate_key_file:
        description: Client certificate and key file for the target.
        type: path
      tls_allow_invalid_certificates:
        description: Accept any target server certificate (testing only).
        type: bool
      direct_connection:
        description: Connect to the given target host only instead of discovering the replica set.
        type: bool
      replica_set:
        description: Replica set name of the target.
        type: str
      connect_timeout:
        description: Seconds to wait for the target server.
        type: int
      connection_options:
        description: Further keyword options for C(pymongo.MongoClient) on the target.
        type: dict
"""
