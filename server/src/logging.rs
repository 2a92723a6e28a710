//! The log: tracing's plain format, every line led by this instance's id (several instances
//! behind one load balancer write to one collector), filtered by `RUST_LOG`.
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{
        format::{self, Format, Writer},
        FmtContext, FormatEvent, FormatFields,
    },
    registry::LookupSpan,
};

/// The filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=warn,memory_serve=warn";

/// Sends the log to standard output, each line led by `instance=<id>`.
pub fn init(instance: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_FILTER.into()),
        )
        .event_format(Tagged {
            instance: instance.to_string(),
            inner: format(),
        })
        .init();
}

/// tracing's default line, after the instance's id.
struct Tagged {
    instance: String,
    inner: Format,
}

impl<S, N> FormatEvent<S, N> for Tagged
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "instance={} ", self.instance)?;
        self.inner.format_event(ctx, writer, event)
    }
}

fn format() -> Format {
    format::format()
}
