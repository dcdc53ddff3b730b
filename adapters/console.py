"""Terminal chat: the embedded default. Interactive on a TTY (a live progress bar), line by
line when stdin is piped, so a session can be scripted."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import mimetypes
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from adapters.base import (
    Conversation,
    Core,
    FailureView,
    ImageInput,
    Incoming,
    NoticeView,
    ProgressView,
    ReplyTarget,
    VideoView,
)
from bot.i18n import detect_language
from bot.images import human_size

BAR_WIDTH = 20
#: the bot's default BOT_MAX_IMAGE_BYTES, for an adapter built without settings
MAX_IMAGE_BYTES = 10 * 1024 * 1024


async def _read_line(stream: TextIO) -> str:
    """One line of `stream`, read in a daemon thread. Reading a terminal blocks, so not on the
    loop; and not in the loop's executor either, whose threads are joined at exit: after Ctrl-C
    at the prompt the process would hang until Enter. A daemon thread is simply left behind."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, error: BaseException | None) -> None:
        if answer.done():  # nobody waits any more (Ctrl-C)
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(line or "")

    def read() -> None:
        try:
            line, error = stream.readline(), None
        except Exception as e:  # handed to the reader on the loop
            line, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return await answer


class ConsoleConversation:
    """Renders the core's views as terminal lines; on a TTY progress redraws one line."""

    def __init__(
        self,
        out: TextIO,
        *,
        interactive: bool,
        saved_as: Callable[[str, str], str | None] | None = None,
        switch_hint: Callable[[str, str], str] | None = None,
    ) -> None:
        self.out = out
        self.interactive = interactive
        #: where a video's file lies on this machine, already worded (the built-in sandbox's)
        self.saved_as = saved_as
        #: how to ask for another model, worded (model name, language)
        self.switch_hint = switch_hint
        self._bar_open = False

    def _write(self, text: str) -> None:
        if self._bar_open:
            self.out.write("\n")
            self._bar_open = False
        self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    async def notice(self, view: NoticeView) -> None:
        self._write(view.text)

    async def progress(self, view: ProgressView) -> None:
        if not self.interactive:
            self._write(view.text)
            return
        filled = BAR_WIDTH * view.percent // 100
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        line = " ".join(view.text.splitlines())
        self.out.write(f"\r[{bar}] {line}\x1b[K")
        self.out.flush()
        self._bar_open = True

    async def video(self, view: VideoView) -> None:
        self._write(view.caption)
        self._write(view.link_text)
        # said in the language of the conversation, which the caption is already in
        saved = self.saved_as(view.url, detect_language(view.caption)) if self.saved_as else None
        if saved:
            self._write(saved)

    async def failure(self, view: FailureView) -> None:
        self._write(view.text)
        if view.alternatives and self.switch_hint:
            # a terminal has no buttons: say how to ask for another model instead
            self._write(self.switch_hint(view.alternatives[0].model_name, detect_language(view.text)))

    async def text(self, text: str) -> None:
        self._write(text)


class ConsoleAdapter:
    """Runs a terminal chat against a core until stdin ends (or /quit)."""

    platform = "console"

    def __init__(
        self,
        core: Core,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        images: Sequence[Path] = (),
        language: str = "en",
        sandbox: bool = False,
        local_file: Callable[[str], Path | None] | None = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        self.core = core
        self.max_image_bytes = max_image_bytes
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.interactive = self.stdin.isatty() and self.stdout.isatty()
        self.language = language
        self.sandbox = sandbox
        self.local_file = local_file
        self.user = getpass.getuser() if self.interactive else "console"
        self._pending: list[ImageInput] = []
        self._initial_images = list(images)
        self._stopped = asyncio.Event()
        self._count = 0

    def conversation_for(self, target: ReplyTarget) -> Conversation:
        return self._conversation()

    def _conversation(self) -> ConsoleConversation:
        return ConsoleConversation(
            self.stdout, interactive=self.interactive, saved_as=self._saved_as, switch_hint=self._switch_hint
        )

    def _switch_hint(self, model: str, language: str) -> str:
        return self.core.t("console.alternatives", language, model=model)

    def _saved_as(self, url: str, language: str) -> str | None:
        path = self.local_file(url) if self.local_file else None
        return self.core.t("console.saved", language, path=str(path)) if path else None

    async def stop(self) -> None:
        self._stopped.set()

    async def wait_ready(self) -> None:
        """A terminal is always ready."""

    def _say(self, key: str, **values: object) -> None:
        # chrome (banner, prompts) goes to stderr when piped so stdout is the conversation alone
        stream = self.stdout if self.interactive else self.stderr
        stream.write(self.core.t(key, self.language, **values) + "\n")
        stream.flush()

    def _attach(self, raw: str) -> None:
        path = Path(raw.strip().strip('"').strip("'")).expanduser()
        if not path.is_file():
            self._say("console.image_missing", path=str(path))
            return
        # the size from stat first: a 300 MB file (or a sparse one) is refused without reading it
        try:
            size = path.stat().st_size
            if size <= self.max_image_bytes:
                with path.open("rb") as f:
                    data = f.read(self.max_image_bytes + 1)  # it may have grown since
                size = len(data)
        except OSError:
            self._say("console.image_unreadable", path=str(path))
            return
        if size > self.max_image_bytes:
            self._say(
                "console.image_too_large",
                name=path.name,
                size=human_size(size),
                limit=human_size(self.max_image_bytes),
            )
            return
        self._pending.append(
            ImageInput(data=data, filename=path.name, content_type=mimetypes.guess_type(path.name)[0])
        )
        self._say("console.image_attached", name=path.name)

    async def _readline(self) -> str | None:
        if self.interactive:
            self.stdout.write(self.core.t("console.prompt", self.language))
            self.stdout.flush()
        line = await _read_line(self.stdin)
        return None if line == "" else line.rstrip("\r\n")

    async def start(self) -> None:
        """Chat until stdin ends; each request is finished before the next line is read."""
        self._say("console.banner")
        if self.sandbox:
            self._say("console.sandbox")
        for path in self._initial_images:
            self._attach(str(path))
        while not self._stopped.is_set():
            line = await self._readline()
            if line is None or line.strip() in ("/quit", "/exit"):
                break
            if not line.strip():
                continue
            if line.startswith("/image"):
                self._attach(line[len("/image") :])
                continue
            self._count += 1
            incoming = Incoming(
                platform="console",
                chat_id="console",
                user_id=self.user,
                text=line,
                images=tuple(self._pending),
                event_id=None,
                language=self.language,
            )
            self._pending.clear()
            job = await self.core.handle(incoming, self._conversation())
            if job is not None:
                await job.wait()
