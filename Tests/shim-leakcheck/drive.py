"""Drives Tests/shim-leakcheck/harness over its Unix socket with Python grpcio and raw HTTP/2, then
sends it SIGTERM with calls in flight. Exits non-zero when a call gets an answer it should not.

    python3 drive.py SOCKET_PATH HARNESS_PID [--max-message BYTES] [--scale N]

Every scenario checks the status the client sees, so a shim that answers wrongly (or not at all)
fails here even when valgrind stays quiet.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

FIXED = bytes([0x0A, 0x02, 0x08, 0x01])
problems: list[str] = []
problems_lock = threading.Lock()


def problem(text: str):
    with problems_lock:
        problems.append(text)
    print(f"PROBLEM: {text}", file=sys.stderr, flush=True)


def step(text: str):
    print(f"--> {text}", file=sys.stderr, flush=True)


def new_channel(path: str) -> grpc.Channel:
    # A local subchannel pool: each channel gets its own connection.
    return grpc.insecure_channel(
        f"unix://{path}",
        options=[
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_send_message_length", 16 << 20),
            ("grpc.max_receive_message_length", 16 << 20),
        ],
    )


def expect_code(call, request: bytes, code: grpc.StatusCode, **kwargs):
    try:
        call(request, **kwargs)
    except grpc.RpcError as error:
        if error.code() != code:
            problem(f"expected {code}, got {error.code()}: {error.details()}")
        return
    problem(f"expected {code}, got OK")


def wait_serving(path: str, pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit("the harness exited before serving")
        if os.path.exists(path):
            channel = new_channel(path)
            try:
                if channel.unary_unary("/test/Inline")(b"", timeout=5, wait_for_ready=True) == FIXED:
                    return
            except grpc.RpcError:
                pass
            finally:
                channel.close()
        time.sleep(0.1)
    sys.exit(f"the harness did not serve {path} within {timeout}s")


# --- raw HTTP/2, for requests grpcio will not send -------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def headers_block(path: bytes) -> bytes:
    fields = [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"),
    ]
    return b"".join(b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v for n, v in fields)


def raw_exchange(path: str, payload: bytes, wait_for_end: bool, timeout: float = 30.0) -> bool:
    """Sends `payload` after the preface; if `wait_for_end`, reads until stream 1 ends (True) or
    the connection closes (False); otherwise closes at once."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(payload)
        if not wait_for_end:
            return True
        buffer = b""
        while True:
            while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                buffer += chunk
            length = int.from_bytes(buffer[:3], "big")
            kind, flags, stream = buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big")
            buffer = buffer[9 + length:]
            if kind == 0x4 and not flags & 0x1:
                sock.sendall(frame(0x4, 0x1, 0))  # SETTINGS ACK
            if stream == 1 and (kind == 0x3 or (kind == 0x1 and flags & 0x1)):  # RST_STREAM or trailers
                return True
    except OSError as error:
        problem(f"raw HTTP/2 exchange failed: {error!r}")
        return False
    finally:
        sock.close()


def raw_scenarios(path: str):
    step("raw HTTP/2: a request with no message, a request cut off, garbage, a slow call dropped")
    hello = PREFACE + frame(0x4, 0, 0)
    for _ in range(20):
        # HEADERS with END_STREAM and no DATA: the shim must answer "did not arrive" itself.
        if not raw_exchange(path, hello + frame(0x1, 0x4 | 0x1, 1, headers_block(b"/test/Inline")), True):
            problem("a request without a message was never answered")
        # HEADERS, no message, connection closed: the receive fails.
        raw_exchange(path, hello + frame(0x1, 0x4, 1, headers_block(b"/test/Inline")), False)
        # A gRPC message announcing 100 bytes, carrying 10, then the connection closes.
        raw_exchange(
            path,
            hello + frame(0x1, 0x4, 1, headers_block(b"/test/Echo"))
            + frame(0x0, 0, 1, b"\x00\x00\x00\x00\x64" + b"x" * 10),
            False,
        )
        # A slow call handed over, then the connection dropped under it.
        raw_exchange(
            path,
            hello + frame(0x1, 0x4, 1, headers_block(b"/test/Slow")) + frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x035000"),
            False,
        )
        # Not HTTP/2 at all.
        raw_exchange(path, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff" * 64, False)


# --- grpcio scenarios ------------------------------------------------------------------------------


def sequential_inline(path: str, count: int):
    step(f"{count} sequential inline calls")
    channel = new_channel(path)
    call = channel.unary_unary("/test/Inline")
    for _ in range(count):
        if call(b"", timeout=30) != FIXED:
            problem("wrong inline response")
            break
    channel.close()


def concurrent_mixed(path: str, threads: int, count: int, max_message: int):
    step(f"{threads} concurrent clients × {count} mixed calls (inline, echo, error, unknown)")

    def client(index: int):
        channel = new_channel(path)
        inline = channel.unary_unary("/test/Inline")
        echo = channel.unary_unary("/test/Echo")
        error = channel.unary_unary("/test/Error")
        unknown = channel.unary_unary(f"/some.Unknown/Method{index}")
        sizes = [0, 1, 100, 4096, max_message // 2, max_message - 16]
        try:
            for i in range(count):
                kind = i % 4
                if kind == 0:
                    if inline(b"", timeout=30) != FIXED:
                        problem("wrong inline response")
                elif kind == 1:
                    payload = bytes([i % 251]) * sizes[i % len(sizes)]
                    if echo(payload, timeout=30) != payload:
                        problem(f"echo of {len(payload)} bytes came back different")
                elif kind == 2:
                    expect_code(error, b"", grpc.StatusCode.FAILED_PRECONDITION, timeout=30)
                else:
                    if unknown(b"abc", timeout=30) != FIXED:
                        problem("wrong response for an unknown method")
        finally:
            channel.close()

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(client, i) for i in range(threads)]:
            future.result()


def slow_on_time(path: str, count: int):
    step(f"{count} slow calls answered from the late thread")
    channel = new_channel(path)
    slow = channel.unary_unary("/test/Slow")
    futures = [slow.future(b"100", timeout=60) for _ in range(count)]
    for future in futures:
        if future.result() != FIXED:
            problem("wrong slow response")
    channel.close()


def deadlines_shorter_than_answer(path: str, count: int):
    step(f"{count} slow calls whose deadline passes first")
    channel = new_channel(path)
    slow = channel.unary_unary("/test/Slow")
    futures = [slow.future(b"1500", timeout=0.3) for _ in range(count)]
    for future in futures:
        try:
            future.result()
            problem("a call past its deadline succeeded")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                problem(f"expected DEADLINE_EXCEEDED, got {error.code()}")
    channel.close()


def client_cancellations(path: str, count: int):
    step(f"{count} slow calls cancelled by the client (after and before the harness has them)")
    channel = new_channel(path)
    slow = channel.unary_unary("/test/Slow")
    later = [slow.future(b"5000", timeout=60) for _ in range(count)]
    at_once = [slow.future(b"5000", timeout=60) for _ in range(count)]
    for future in at_once:
        future.cancel()
    time.sleep(0.3)
    for future in later:
        future.cancel()
    for future in later + at_once:
        if not future.cancelled():
            problem("a cancelled call did not end as cancelled")
    # The same channel still works.
    if channel.unary_unary("/test/Inline")(b"", timeout=30) != FIXED:
        problem("the channel broke after cancellations")
    channel.close()


def channel_closed_under_calls(path: str, rounds: int):
    step(f"{rounds} channels closed with slow calls in flight")
    for _ in range(rounds):
        channel = new_channel(path)
        slow = channel.unary_unary("/test/Slow")
        futures = [slow.future(b"3000", timeout=60) for _ in range(10)]
        time.sleep(0.05)
        channel.close()
        for future in futures:
            try:
                future.result(timeout=30)
                problem("a call on a closed channel succeeded")
            except grpc.RpcError:
                pass
            except Exception:  # concurrent.futures.CancelledError on some grpcio versions
                pass


def oversize(path: str, max_message: int, count: int):
    step(f"{count} requests over the {max_message}-byte limit, and an echo just under it")
    channel = new_channel(path)
    for method in ("/test/Inline", "/test/Slow", "/test/Echo"):
        call = channel.unary_unary(method)
        for _ in range(count):
            expect_code(call, b"x" * (max_message + 1024), grpc.StatusCode.RESOURCE_EXHAUSTED, timeout=30)
    payload = b"y" * (max_message - 64)
    if channel.unary_unary("/test/Echo")(payload, timeout=30) != payload:
        problem("the echo under the limit came back different")
    channel.close()


def sigterm_with_calls_in_flight(path: str, pid: int):
    step("SIGTERM with calls in flight: short ones must finish, long ones are cancelled at the grace end")
    channel = new_channel(path)
    slow = channel.unary_unary("/test/Slow")
    short = [slow.future(b"400", timeout=60) for _ in range(10)]
    long = [slow.future(b"120000", timeout=300) for _ in range(10)]
    inline_results = []
    stop = threading.Event()

    def keep_calling():
        other = new_channel(path)
        call = other.unary_unary("/test/Inline")
        while not stop.is_set():
            try:
                call(b"", timeout=30)
                inline_results.append("ok")
            except grpc.RpcError as error:
                inline_results.append(error.code())
                break
        other.close()

    caller = threading.Thread(target=keep_calling)
    caller.start()
    time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    for future in short:
        try:
            if future.result() != FIXED:
                problem("a short call in flight at SIGTERM got a wrong answer")
        except grpc.RpcError as error:
            problem(f"a short call in flight at SIGTERM failed: {error.code()}")
    for future in long:
        try:
            future.result()
            problem("a 120 s call in flight at SIGTERM succeeded")
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE):
                problem(f"a long call cancelled by shutdown got {error.code()}")
    stop.set()
    caller.join()
    channel.close()
    step(f"inline calls made around SIGTERM: {inline_results.count('ok')} ok, then {inline_results[-1:]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("pid", type=int)
    parser.add_argument("--max-message", type=int, default=65536)
    parser.add_argument("--scale", type=int, default=1, help="multiplies the call counts")
    arguments = parser.parse_args()
    path, scale = arguments.socket, arguments.scale

    wait_serving(path, arguments.pid, timeout=120)
    sequential_inline(path, 1000 * scale)
    concurrent_mixed(path, 8, 250 * scale, arguments.max_message)
    slow_on_time(path, 50)
    deadlines_shorter_than_answer(path, 40)
    client_cancellations(path, 40)
    channel_closed_under_calls(path, 5)
    oversize(path, arguments.max_message, 5)
    raw_scenarios(path)
    sequential_inline(path, 200)  # still healthy after all that
    sigterm_with_calls_in_flight(path, arguments.pid)

    if problems:
        print(f"{len(problems)} problem(s); first: {problems[0]}", file=sys.stderr)
        sys.exit(1)
    step("all client-side checks passed")


if __name__ == "__main__":
    main()
