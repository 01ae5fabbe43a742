//! Image functions' code source: `Code.ImageUri` (resolved by [`crate::ecr::resolve`]).

use lamina_model::LambdaError;

/// The `ImageUri` of a `PackageType: Image` request (creating, or updating the code), refusing
/// zip sources as Lambda does.
pub(crate) fn uri_of(
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
    creating: bool,
) -> Result<String, LambdaError> {
    if zip_file.is_some() || s3_bucket.is_some() {
        return Err(LambdaError::invalid_parameter(
            "Please don't provide ZipFile or S3 code when updating a function with packageType Image: provide ImageUri.",
        ));
    }
    let verb = if creating { "creating" } else { "updating" };
    image_uri.filter(|u| !u.is_empty()).ok_or_else(|| {
        LambdaError::invalid_parameter(format!(
            "Please provide ImageUri when {verb} a function with packageType Image."
        ))
    })
}
