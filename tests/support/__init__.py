"""Test doubles of outside systems (GitHub's REST API), for unit, integration and e2e tests."""
