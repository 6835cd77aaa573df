//! The shared one-use store: a DynamoDB table, so that a signed request redeemed on one
//! instance is refused on every other (Lambda, ECS with several tasks).
//!
//! One `PutItem` per exchange, conditional on `attribute_not_exists(signature_sha256)`: the
//! item is `{signature_sha256: S, expires_at: N}` (the key is a hash of the signature,
//! never the request), and the table's TTL on `expires_at` deletes it once the request can
//! no longer be valid. `ConditionalCheckFailedException` means redeemed before; any other
//! failure (unreachable, throttled, missing table, denied) is an error the exchange turns into
//! a 503: the store fails closed, it never accepts a request it could not record.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::one_use::{OneUseError, OneUseStore, Redeemed, Redemption};
use crate::aws::describe_error;

/// The table's partition key (a string).
pub const KEY_ATTRIBUTE: &str = "signature_sha256";
/// The table's TTL attribute (a number: seconds since the Unix epoch).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Redeemed signatures in a DynamoDB table.
pub struct DynamoOneUse {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoOneUse {
    /// A store writing to `table` through `client` (built by `crate::aws`).
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> DynamoOneUse {
        DynamoOneUse {
            client,
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl OneUseStore for DynamoOneUse {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    async fn redeem(&self, redemption: &Redemption, _now: u64) -> Result<Redeemed, OneUseError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(redemption.key.clone()))
            .item(
                TTL_ATTRIBUTE,
                AttributeValue::N(redemption.expires_at.to_string()),
            )
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", KEY_ATTRIBUTE)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Redeemed::First),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(_) => Ok(Redeemed::Again),
                PutItemError::ProvisionedThroughputExceededException(_)
                | PutItemError::RequestLimitExceeded(_)
                | PutItemError::ThrottlingException(_) => Err(OneUseError::Throttled(format!(
                    "DynamoDB PutItem {}: {}",
                    self.table,
                    describe_error(e.err())
                ))),
                other => Err(OneUseError::Unavailable(format!(
                    "DynamoDB PutItem {}: {}",
                    self.table,
                    describe_error(other)
                ))),
            },
            Err(e) => Err(OneUseError::Unavailable(format!(
                "DynamoDB PutItem {}: {}",
                self.table,
                describe_error(&e)
            ))),
        }
    }
}
