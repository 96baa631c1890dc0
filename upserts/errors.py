"""The one base of what the console refuses a person: a message for them, a stable ``code``
for scripts, and the HTTP status the API answers it with. The pages show the message; the API
turns it into its error shape (``upserts.api.errors``)."""


class ConsoleError(Exception):
    code = "refused"
    http_status = 400

    @property
    def message(self) -> str:
        return str(self)
