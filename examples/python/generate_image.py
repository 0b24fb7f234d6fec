"""A dmesh client in Python over plain gRPC: submits a txt2img generation to the orchestrator, prints its
progress as the session streams it, and saves the image it made.

Its messages and stubs are generated from the repository's proto/ by generate-stubs.sh (into ./gen by default;
--stubs names another folder). Needs grpcio and protobuf (Debian: python3-grpcio, python3-protobuf).

    ./generate-stubs.sh && python3 generate_image.py "a red fox in snow" --out fox.png
"""
import argparse
import os
import sys


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prompt")
    parser.add_argument("--out", default="image.png", help="where to save the PNG")
    parser.add_argument("--address", default="127.0.0.1:50051", help="the orchestrator's host:port")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--seed", type=int, help="unset: the orchestrator draws one and reports it")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole generation")
    parser.add_argument(
        "--stubs",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"),
        help="the folder generate-stubs.sh wrote",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    from dmesh.common.v1 import generation_pb2
    from dmesh.processing.v1 import artifact_pb2, artifact_pb2_grpc, processing_pb2, processing_pb2_grpc
    from dmesh.processing.v1 import session_pb2

    # With API keys on (API_KEYS_FILE), the orchestrator wants the tenant's key as a bearer token.
    api_key = os.environ.get("DMESH_API_KEY")
    metadata = [("authorization", "Bearer " + api_key)] if api_key else []

    spec = generation_pb2.GenerationSpec(
        conditioning=generation_pb2.Conditioning(prompt=args.prompt),
        size=generation_pb2.Dimensions(width=args.width, height=args.height),
        scheduler=generation_pb2.SchedulerSpec(steps=args.steps),
        params=generation_pb2.Hyperparameters(seed=args.seed) if args.seed is not None else None,
    )
    request = processing_pb2.ExecuteWorkflowRequest(workflow_id="txt2img", spec=spec)

    with grpc.insecure_channel(args.address) as channel:
        processing = processing_pb2_grpc.ProcessingServiceStub(channel)
        session, shown = None, None
        try:
            # One server stream for the whole session: a snapshot, state changes, progress, artifacts.
            for response in processing.ExecuteWorkflow(request, timeout=args.timeout, metadata=metadata):
                event, session = response.event, response.event.session
                line = None
                if event.kind == session_pb2.SESSION_EVENT_KIND_PROGRESS and session.denoise_total:
                    line = "step %d/%d, workflow %d%%" % (
                        session.denoise_step,
                        session.denoise_total,
                        session.progress * 100,
                    )
                elif event.kind in (session_pb2.SESSION_EVENT_KIND_SNAPSHOT, session_pb2.SESSION_EVENT_KIND_STATE):
                    line = "session %s %s" % (session.id, session_pb2.SessionState.Name(session.state))
                if line and line != shown:
                    print(line, flush=True)
                    shown = line
        except grpc.RpcError as err:
            # Bad input answers INVALID_ARGUMENT naming the field, e.g. "spec.size.width: ...".
            sys.exit("%s: %s" % (err.code().name, err.details()))
        if session is None or session.state != session_pb2.SESSION_STATE_COMPLETED:
            sys.exit("the session did not complete: %s" % (session.error if session else "no event"))

        # The image is an artifact, streamed in chunks: its info first, then its bytes.
        artifacts = artifact_pb2_grpc.ArtifactServiceStub(channel)
        request = artifact_pb2.GetArtifactRequest(artifact_id=session.artifact_ids[0])
        info = None
        with open(args.out, "wb") as out:
            for response in artifacts.GetArtifact(request, timeout=60, metadata=metadata):
                if response.HasField("artifact"):
                    info = response.artifact
                out.write(response.chunk)
        print("saved %s (%dx%d, seed %d)" % (args.out, info.width, info.height, info.seed))


if __name__ == "__main__":
    main()
