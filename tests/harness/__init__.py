"""Test harness: real PostgreSQL clusters, FerretDB servers and Ansible runs, started and torn down by pytest."""
