from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        from backoffice.joberrors import register

        register()  # the job-error feed: Celery's task_failure and the core's isolated failures

        from backoffice.joberrors import open_job_errors_count
        from backoffice.views import heartbeat_ages
        from copytrading.observability import metrics

        # Read at scrape (/metrics).
        metrics.JOB_ERRORS_UNACKNOWLEDGED.source = open_job_errors_count
        metrics.HEARTBEAT_AGE_SECONDS.source = heartbeat_ages
