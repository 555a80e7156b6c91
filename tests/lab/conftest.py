def pytest_configure(config):
    config.addinivalue_line("markers", "drill: a fault drill (make test-faults runs them all)")
    config.addinivalue_line("markers", "ci_drill: the fault drills make test runs")
