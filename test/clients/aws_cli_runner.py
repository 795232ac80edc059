"""Runs aws CLI v2 commands for test/clients/aws-cli.test.ts without a second of Python
start-up each: this process imports awscli once, then forks a child per command that runs
what /usr/bin/aws runs, awscli.clidriver.main(), with its own argv, stdout and stderr.

Each stdin line is a JSON request {"args": [...], "stdout": PATH, "stderr": PATH}; each answer
is one JSON line {"code": EXIT_STATUS}. The environment (AWS_CONFIG_FILE...) is this process's.
"""
import json
import os
import sys
import traceback

import awscli.clidriver


def run(request):
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.argv = ["aws", *request["args"]]
    code = 255
    try:
        code = awscli.clidriver.main()
    except BaseException:  # noqa: B036 - the child must never return into the loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main():
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
