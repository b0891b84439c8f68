"""The Azure Functions app: creates the FunctionApp and registers the blueprints, nothing else.

Importing this module does no I/O and imports no management, Redis or PostgreSQL client
(invariant 8): handlers build their clients lazily on first use.
"""

import azure.functions as func

from handlers.alerts import bp as alerts
from handlers.eventgrid import bp as eventgrid
from handlers.health import bp as health
from handlers.lookups import bp as lookups
from handlers.queues import bp as queues
from handlers.timers import bp as timers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (alerts, eventgrid, health, lookups, queues, timers):
    app.register_functions(blueprint)
