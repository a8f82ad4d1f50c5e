"""Tools: train, compile, package, loadtest, report, bench, warm. The CLI is a thin shell over these."""
