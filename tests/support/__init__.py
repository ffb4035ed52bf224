"""What the tests and bench/ share: test doubles of outside systems (GitHub's REST API, faulty
networks), record factories, and helpers to drive the service. Test modules import only this
package, never another test module or a conftest (tests/unit/test_test_layout.py checks it)."""
