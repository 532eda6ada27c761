"""Stopping the local stand-ins politely, then firmly, and releasing their pipes."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; then close the pipes we held."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    close_pipes(process)


def close_pipes(process: subprocess.Popen) -> None:
    """Close an exited process's stdin/stdout/stderr (a reader thread has had its EOF by then)."""
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None and not stream.closed:
            stream.close()
