from casereach.cli.main import run

run()
