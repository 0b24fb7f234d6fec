#!/usr/bin/env bash
# A dmesh client in the shell: the Connect protocol with JSON over HTTP, spoken by curl, read by jq.
# Submits a txt2img generation to the orchestrator, prints its progress as it streams, saves the PNG.
#
#   ./generate.sh "a red fox in snow" fox.png
#
# Environment: DMESH_URL (default http://127.0.0.1:50051), DMESH_API_KEY (when the orchestrator has API keys),
# STEPS (20), WIDTH and HEIGHT (512), SEED (unset: the orchestrator draws one and reports it).
#
# Unary RPCs are one JSON POST (ListArtifacts below). Streaming RPCs put each JSON message in an envelope:
# a flags byte and a 4-byte big-endian length; the server's last envelope (flags bit 2) ends the stream with
# an error or with {}.
set -euo pipefail
export LC_ALL=C # lengths count bytes

prompt=${1:?usage: generate.sh PROMPT [OUT.png]}
out=${2:-image.png}
url=${DMESH_URL:-http://127.0.0.1:50051}
auth=()
[ -n "${DMESH_API_KEY:-}" ] && auth=(-H "Authorization: Bearer $DMESH_API_KEY")

# POST to one RPC; $1 is Service/Method, $2 the content type, the body comes on stdin.
call() {
  curl -sS --fail-with-body --no-buffer --max-time "${TIMEOUT:-600}" "${auth[@]}" \
    -H "Content-Type: $2" -H "Connect-Protocol-Version: 1" --data-binary @- "$url/$1"
}

# One JSON message in a Connect envelope.
envelope() {
  local n=${#1}
  printf '\x00'
  printf "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))"
  printf "\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
  printf '%s' "$1"
}

# A Connect stream on stdin, each message printed as one JSON line as soon as it arrives; the end-of-stream
# envelope's error, if any, goes to stderr and fails the pipe.
messages() {
  local header flags b1 b2 b3 b4 length body
  while header=$(dd bs=5 count=1 iflag=fullblock status=none | od -An -tu1) && [ -n "$header" ]; do
    read -r flags b1 b2 b3 b4 <<<"$header"
    length=$((b1 << 24 | b2 << 16 | b3 << 8 | b4))
    body='{}'
    [ "$length" -gt 0 ] && body=$(dd bs="$length" count=1 iflag=fullblock status=none)
    if ((flags & 2)); then
      if jq -e .error >/dev/null <<<"$body"; then
        jq -r '"\(.error.code): \(.error.message)"' <<<"$body" >&2
        return 1
      fi
      return 0
    fi
    printf '%s\n' "$body"
  done
}

request=$(jq -cn --arg prompt "$prompt" --argjson steps "${STEPS:-20}" \
  --argjson width "${WIDTH:-512}" --argjson height "${HEIGHT:-512}" --arg seed "${SEED:-}" '{
    workflowId: "txt2img",
    spec: {
      conditioning: { prompt: $prompt },
      size: { width: $width, height: $height },
      scheduler: { steps: $steps },
      params: (if $seed == "" then {} else { seed: $seed } end)
    }
  }')

# One server stream for the whole session: a snapshot, state changes, progress, artifacts.
events=$(mktemp)
trap 'rm -f "$events"' EXIT
envelope "$request" | call dmesh.processing.v1.ProcessingService/ExecuteWorkflow application/connect+json |
  messages | tee "$events" | jq -rn --unbuffered 'foreach (inputs | .event) as $e ({};
    ($e.session as $s | if $e.kind == "SESSION_EVENT_KIND_PROGRESS" and $s.denoiseTotal
      then "step \($s.denoiseStep // 0)/\($s.denoiseTotal), workflow \(($s.progress // 0) * 100 | floor)%"
      elif $e.kind == "SESSION_EVENT_KIND_SNAPSHOT" or $e.kind == "SESSION_EVENT_KIND_STATE"
      then "session \($s.id) \($s.state)" else null end) as $line
    | {shown: ($line // .shown), new: ($line != null and $line != .shown)}; if .new then .shown else empty end)'

session=$(jq -sc '.[-1].event.session' "$events")
if [ "$(jq -r .state <<<"$session")" != SESSION_STATE_COMPLETED ]; then
  echo "the session did not complete: $(jq -r '.error // .state' <<<"$session")" >&2
  exit 1
fi

# A unary RPC: plain JSON in, plain JSON out.
artifact=$(jq -c '{sessionId: .id}' <<<"$session" |
  call dmesh.processing.v1.ArtifactService/ListArtifacts application/json | jq -c '.artifacts[0]')

# The bytes come in chunks, base64 in JSON; each decoded on its own (a chunk's base64 may end in padding).
jq -c '{artifactId: .id}' <<<"$artifact" | { read -r body && envelope "$body"; } |
  call dmesh.processing.v1.ArtifactService/GetArtifact application/connect+json |
  messages | jq -r '.chunk // empty' | while read -r chunk; do base64 -d <<<"$chunk"; done >"$out"
jq -r --arg out "$out" '"saved \($out) (\(.width)x\(.height), seed \(.seed))"' <<<"$artifact"
