#!/usr/bin/env python3
# judge.py: a judge written in Python that rlj uses as its `remote` backend: it implements rlj.v1.Judge/Score
# from proto/rlj/v1/judge.proto with Debian's python3-grpcio and python3-protobuf. The Python stubs are
# generated at start-up from the .proto files with protoc and grpc_python_plugin (Debian's
# protobuf-compiler and protobuf-compiler-grpc), so they always match the checkout.
#
# Scoring: the completion's last number against the reference's (like the `rule` judge's numeric mode),
# plus a small brevity bonus, to show components and rationales. A sample it cannot judge gets an error
# (kind "invalid"), never a reward of 0.
#
#   python3 examples/python_judge/judge.py --listen 127.0.0.1:0 --port-file /tmp/judge.port
#   # then in the run config:  judge: {backend: remote, remote: {address: "127.0.0.1:PORT"}}
import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def generate_stubs(proto_root, out_dir):
    """Writes rlj/v1/*_pb2.py and judge_pb2_grpc.py under out_dir from the checkout's .proto files."""
    protos = [os.path.join(proto_root, "rlj", "v1", name)
              for name in sorted(os.listdir(os.path.join(proto_root, "rlj", "v1"))) if name.endswith(".proto")]
    plugin = shutil.which("grpc_python_plugin")
    if shutil.which("protoc") and plugin:
        command = ["protoc", "-I", proto_root, "--python_out", out_dir, "--grpc_python_out", out_dir,
                   "--plugin=protoc-gen-grpc_python=" + plugin] + protos
    else:  # python3-grpc-tools
        command = [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_root, "--python_out", out_dir,
                   "--grpc_python_out", out_dir] + protos
    subprocess.run(command, check=True)
    for package in ("rlj", os.path.join("rlj", "v1")):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()


def last_number(text):
    found = NUMBER.findall(text or "")
    return float(found[-1]) if found else None


def make_servicer(judge_pb2, judge_pb2_grpc):
    class NumericJudge(judge_pb2_grpc.JudgeServicer):
        def Score(self, request, context):
            response = judge_pb2.ScoreResponse()
            for sample in request.samples:
                verdict = response.verdicts.add()
                verdict.sample_id = sample.id
                verdict.backend = "python-example"
                verdict.model = "numeric+brevity"
                expected = last_number(sample.reference)
                if expected is None:
                    verdict.error.code = 3  # INVALID_ARGUMENT
                    verdict.error.kind = "invalid"
                    verdict.error.message = "the sample's reference has no number"
                    continue
                got = last_number(sample.completion)
                correct = 1.0 if got is not None and abs(got - expected) <= 1e-6 else 0.0
                brevity = 0.1 if len(sample.completion.strip()) <= 8 else 0.0
                verdict.reward = correct + brevity
                verdict.components["correct"] = correct
                verdict.components["brevity"] = brevity
                verdict.rationale = "expected %g, got %s" % (expected, "nothing" if got is None else "%g" % got)
            return response

    return NumericJudge()


def main():
    parser = argparse.ArgumentParser(description="An rlj remote judge in Python")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port; port 0 picks a free one")
    parser.add_argument("--port-file", help="write the bound port here once serving")
    parser.add_argument("--proto-root", default=DEFAULT_PROTO_ROOT, help="directory holding rlj/v1/*.proto")
    parser.add_argument("--workers", type=int, default=8, help="concurrent Score calls")
    args = parser.parse_args()

    stubs = tempfile.mkdtemp(prefix="rlj-python-judge-")
    try:
        generate_stubs(args.proto_root, stubs)
        sys.path.insert(0, stubs)
        import grpc
        from rlj.v1 import judge_pb2, judge_pb2_grpc

        server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=args.workers))
        judge_pb2_grpc.add_JudgeServicer_to_server(make_servicer(judge_pb2, judge_pb2_grpc), server)
        port = server.add_insecure_port(args.listen)
        if port == 0:
            sys.exit("cannot listen on " + args.listen)
        server.start()
        if args.port_file:
            partial = args.port_file + ".tmp"
            with open(partial, "w") as out:
                out.write("%d\n" % port)
            os.replace(partial, args.port_file)  # readers never see a half-written file
        print("python judge listening on port %d" % port, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: server.stop(1))
        try:
            server.wait_for_termination()
        except KeyboardInterrupt:
            server.stop(1)
    finally:
        shutil.rmtree(stubs, ignore_errors=True)


if __name__ == "__main__":
    main()
