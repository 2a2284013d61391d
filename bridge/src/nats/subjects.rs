//! The NATS subject layout. An MQTT topic `a/b/c` published to the MQTT
//! listener of nats-server is the subject `a.b.c`, so readings arrive on
//! `{prefix}.{site}.{sensor}.reading`.
//!
//! With more than one partition, the servers map each reading subject to
//! `{prefix}.part.{partition}.{site}.{sensor}.reading`, where the partition
//! is a hash of the site and sensor tokens computed by the server
//! (`partition(N,1,2)` in a subject mapping, nats-server 2.8 and later).
//! One sensor therefore always lands in one partition, and each partition
//! is a separate filter on the readings stream.

/// Token between the prefix and the partition number in mapped subjects.
const PARTITION_TOKEN: &str = "part";

/// Builds and parses the subjects of one prefix and partition count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
    partitions: u32,
}

impl Subjects {
    /// Creates the layout for the MQTT topic prefix `topic_prefix`, whose
    /// levels become subject tokens.
    pub fn new(topic_prefix: &str, partitions: u32) -> Self {
        Self {
            prefix: topic_to_subject(topic_prefix.trim_end_matches('/')),
            partitions,
        }
    }

    /// Returns the number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Returns the subject an MQTT client publishes a reading of
    /// `site`/`sensor` on, before any server mapping.
    pub fn reading(&self, site: &str, sensor: &str) -> String {
        format!("{}.{site}.{sensor}.reading", self.prefix)
    }

    /// Returns the subjects the readings stream captures.
    pub fn stream_subjects(&self) -> Vec<String> {
        match self.partitions {
            1 => vec![format!("{}.*.*.reading", self.prefix)],
            _ => vec![format!("{}.{PARTITION_TOKEN}.*.*.*.reading", self.prefix)],
        }
    }

    /// Returns the filter subject of partition `index`'s consumer.
    pub fn partition_filter(&self, index: u32) -> String {
        match self.partitions {
            1 => format!("{}.*.*.reading", self.prefix),
            _ => format!("{}.{PARTITION_TOKEN}.{index}.*.*.reading", self.prefix),
        }
    }

    /// Returns the subject mapping that the servers need when there is more
    /// than one partition, as a `mappings` entry of nats-server's config.
    pub fn server_mapping(&self) -> (String, String) {
        (
            format!("{}.*.*.reading", self.prefix),
            format!(
                "{}.{PARTITION_TOKEN}.{{{{partition({},1,2)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.reading",
                self.prefix, self.partitions
            ),
        )
    }

    /// Splits a reading subject, mapped or not, into its site and sensor
    /// tokens. Returns `None` for any other subject.
    pub fn parse_reading<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('.')?;
        let rest = match rest.strip_prefix(PARTITION_TOKEN) {
            Some(mapped) if mapped.starts_with('.') && self.partitions > 1 => {
                let (_, rest) = mapped[1..].split_once('.')?;
                rest
            }
            _ => rest,
        };
        let mut tokens = rest.split('.');
        let site = tokens.next()?;
        let sensor = tokens.next()?;
        match (tokens.next(), tokens.next()) {
            (Some("reading"), None) => Some((site, sensor)),
            _ => None,
        }
    }
}

/// Converts an MQTT topic to the subject nats-server uses for it.
pub fn topic_to_subject(topic: &str) -> String {
    topic.replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_partition_uses_plain_subjects() {
        let subjects = Subjects::new("floorwatch", 1);
        assert_eq!(subjects.stream_subjects(), ["floorwatch.*.*.reading"]);
        assert_eq!(subjects.partition_filter(0), "floorwatch.*.*.reading");
        assert_eq!(
            subjects.parse_reading("floorwatch.plant-1.oven-1.reading"),
            Some(("plant-1", "oven-1"))
        );
        // A site named like the partition token is an ordinary site.
        assert_eq!(
            subjects.parse_reading("floorwatch.part.oven-1.reading"),
            Some(("part", "oven-1"))
        );
    }

    #[test]
    fn partitions_use_mapped_subjects() {
        let subjects = Subjects::new("floorwatch", 4);
        assert_eq!(
            subjects.stream_subjects(),
            ["floorwatch.part.*.*.*.reading"]
        );
        assert_eq!(
            subjects.partition_filter(3),
            "floorwatch.part.3.*.*.reading"
        );
        assert_eq!(
            subjects.parse_reading("floorwatch.part.3.plant-1.oven-1.reading"),
            Some(("plant-1", "oven-1"))
        );
        let (from, to) = subjects.server_mapping();
        assert_eq!(from, "floorwatch.*.*.reading");
        assert_eq!(
            to,
            "floorwatch.part.{{partition(4,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.reading"
        );
    }

    #[test]
    fn other_subjects_are_not_readings() {
        let subjects = Subjects::new("plant/floorwatch/", 1);
        assert_eq!(subjects.reading("s", "x"), "plant.floorwatch.s.x.reading");
        assert_eq!(subjects.parse_reading("floorwatch.s.x.reading"), None);
        assert_eq!(
            subjects.parse_reading("plant.floorwatch.s.x.incident"),
            None
        );
        assert_eq!(
            subjects.parse_reading("plant.floorwatch.s.x.reading.y"),
            None
        );
        assert_eq!(subjects.parse_reading("plant.floorwatch.s.reading"), None);
    }
}
