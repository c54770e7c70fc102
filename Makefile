# Lamplighter — the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG ?= examples/city.toml

.PHONY: run test install web bytecode system-deps postgres ngsi-client lint typecheck unit soak bench bench-city bench-polling bench-rs485 bench-rss bench-mqtt bench-schedules bench-alerts bench-influx bench-firmware bench-api bench-dashboard bench-reports bench-air clean

## run: the simulated city, the controller polling it, and the API on localhost (Ctrl-C stops)
run: install system-deps
	$(BIN)/lamplighter run -c $(CONFIG) --simulate --schedules examples/schedules.toml

## test: install everything, lint, type-check, run the whole suite
test: install system-deps postgres ngsi-client lint typecheck unit

install: $(STAMP) web bytecode

## bytecode: the project's modules compiled once (a pip-installed package has them; with
## PYTHONDONTWRITEBYTECODE set, as here, every start compiled them again: ~0.15 s of each restart)
PACKAGES := api controller drivers schedules firmware_bridge lamplighter simulators
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) >/dev/null

## web: the browser libraries of the dashboard and /docs (MapLibre GL, Swagger UI), from the npm
## registry as pinned in api/dashboard/package-lock.json; the API serves them (no CDN at run time)
WEB := api/dashboard
web: $(WEB)/node_modules/.package-lock.json

$(WEB)/node_modules/.package-lock.json: $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "installing Debian's nodejs and npm"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd $(WEB) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## system-deps: Debian packages used at run and test time: socat makes the RS-485 pty pairs,
## mosquitto is the real broker the MQTT tests start on a private port; influxdb (1.6, /write and
## InfluxQL) and victoria-metrics (/api/v2/write) are the telemetry servers the tests start the same way
## (their packages start nothing: the tests run them on loopback ports, data under a temp dir);
## chromium is the browser the dashboard tests drive with Playwright (never `playwright install`);
## prometheus brings promtool, which lints /metrics (its server is not started); iptables cuts one
## test instance off PostgreSQL on loopback (a partition, tests/controller/test_leases.py);
## systemd-analyze and docker-compose check deploy/'s unit and compose file (no daemon is started)
system-deps:
	@missing=""; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v influxd >/dev/null 2>&1 || missing="$$missing influxdb"; \
	command -v victoria-metrics >/dev/null 2>&1 || missing="$$missing victoria-metrics"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing="$$missing iptables"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## postgres: the PostgreSQL server the registry tests run on (tests/postgres.py): the one already on
## 127.0.0.1:5432, else Debian's package installed and started here, the postgres user given the
## password "postgres" (a test server on loopback; production settings are in docs/deployment.md)
AS_POSTGRES := $(if $(SUDO),sudo -u postgres,runuser -u postgres --)
postgres:
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi; \
	echo "starting PostgreSQL for the tests"; \
	command -v pg_ctlcluster >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }; \
	version=$$(ls /etc/postgresql | sort -V | tail -1); \
	$(SUDO) pg_ctlcluster $$version main start || true; \
	for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	$(AS_POSTGRES) psql -q -c "ALTER USER postgres PASSWORD 'postgres'"

## ngsi-client: the FIWARE tools the NGSI-LD tests use (tests/api/test_ngsi_ld.py): the ngsildclient
## library drives our API; pysmartdatamodels holds the Smart Data Models our entities are checked
## against. ngsildclient pins an old httpx, so they live in their own environment, as a foreign client would.
NGSI_VENV := .venv-ngsi
ngsi-client: $(NGSI_VENV)/.installed-stamp

$(NGSI_VENV)/.installed-stamp: Makefile
	$(PYTHON) -m venv $(NGSI_VENV)
	$(NGSI_VENV)/bin/python -m pip install --quiet 'ngsildclient==0.5.2' 'pysmartdatamodels==0.8.2.0'
	touch $@

lint: install
	$(BIN)/ruff check .
	@for f in $(WEB)/*.js; do node --experimental-default-type=module --check $$f || exit 1; done  # the dashboard's modules parse

typecheck: install
	$(BIN)/mypy

unit: install system-deps postgres ngsi-client
	$(BIN)/pytest -q

## bench: performance figures (not tests): polling throughput, RS-485 efficiency, controller RSS
bench: bench-polling bench-rs485 bench-rss bench-mqtt bench-schedules bench-alerts bench-influx bench-firmware bench-api bench-dashboard bench-reports bench-air bench-city

bench-polling: install
	$(BIN)/python -m bench.bench_polling --lamps 1000 --lamps 10000 --loop asyncio
	$(BIN)/python -m bench.bench_polling --lamps 1000 --lamps 10000 --loop uvloop --stages 3 --own-cost 3

bench-rs485: install system-deps
	$(BIN)/python -m bench.bench_rs485

bench-mqtt: install system-deps
	$(BIN)/python -m bench.bench_payload --messages 100000
	$(BIN)/python -m bench.bench_mqtt --messages 50000
	$(BIN)/python -m bench.bench_mqtt_resilience --overload-seconds 60

bench-schedules: install
	$(BIN)/python -m bench.bench_schedules --groups 1000 --lamps 100000
	$(BIN)/python -m bench.bench_group_command --lamps 1000

bench-alerts: install system-deps
	$(BIN)/python -m bench.bench_alerts --interval 1 --rounds 3 --storm 5000

bench-influx: install system-deps
	$(BIN)/python -m bench.bench_influx --points 200000 --outage-rate 1000 --outage-seconds 10

bench-firmware: install system-deps
	$(BIN)/python -m bench.bench_firmware --image-kb 64 --devices 1000

bench-api: install
	$(BIN)/python -m bench.bench_api --devices 10000 --rate 500 --seconds 10

## bench-reports: the monthly report of 10,000 lamps and 500 access points, and draft previews (no I/O)
bench-reports: install
	$(BIN)/python -m bench.bench_reports --lamps 10000 --aps 500

## bench-air: the hourly air quality index of 2,000 sensors with 24 h of readings (embedded store)
bench-air: install
	$(BIN)/python -m bench.bench_air --sensors 2000

## bench-dashboard: the dashboard with 50,000 lamps in headless Chromium, against the page it replaced
bench-dashboard: install system-deps
	$(BIN)/python -m bench.bench_dashboard --lamps 50000 --idle-s 60

## bench-city: 50,000 lamps + 2,000 sensors + 500 access points served by 1, then 3 instances
## sharing PostgreSQL, InfluxDB and Mosquitto (about 8 minutes; docs/deployment.md)
bench-city: install system-deps postgres
	$(BIN)/python -m bench.bench_city --instances 1 --instances 3 --seconds 60

## soak: the resilience tests five times over (broker, InfluxDB and PostgreSQL outages, kill -9 of
## an instance, the lease faults: kill -9, pause, partition from PostgreSQL), the lease faults five
## times more, then the MQTT broker restart at 1,000 msg/s and a 60 s overload
soak: install system-deps postgres
	for i in 1 2 3 4 5; do \
	  $(BIN)/pytest -q tests/controller/test_restarts.py tests/controller/test_takeover.py \
	    tests/controller/test_database_outage.py tests/controller/test_leases.py || exit 1; \
	done
	for i in 1 2 3 4 5; do $(BIN)/pytest -q tests/controller/test_leases.py || exit 1; done
	$(BIN)/python -m bench.bench_mqtt_resilience --overload-seconds 60

bench-rss: install
	$(BIN)/python -m bench.bench_rss --lamps 10000

clean:
	rm -rf $(VENV) $(NGSI_VENV) var .mypy_cache .ruff_cache .pytest_cache *.egg-info
