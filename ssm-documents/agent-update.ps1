# Agent update: runs first, so it must work on agents older than ENV_VAR interpolation
# (3.3.2746.0). Its parameters have no interpolationType: the agent pastes each value here once,
# inside single quotes, and the allowedPatterns admit no quote, '$', backtick, space or newline.
$script:RunId = '{{ RunId }}'
$script:Stage = '{{ Stage }}'
$script:Bucket = '{{ Bucket }}'
$script:Region = '{{ Region }}'
$script:MarkerPrefix = '{{ MarkerPrefix }}'
$script:ApplicationTagKey = '{{ ApplicationTagKey }}'
$script:OwnerTagKey = '{{ OwnerTagKey }}'

# When the marker is written: the agent installer stops the service and the document worker
# with it, so this script downloads and checks the installer, writes the marker, and only then
# (PpAfterMarker) starts the installer as a separate process that outlives the restart.
Invoke-PpDocument -Work {
    $agentExe = Join-Path $env:ProgramFiles 'Amazon\SSM\amazon-ssm-agent.exe'
    if (-not (Test-Path -LiteralPath $agentExe)) {
        throw 'amazon-ssm-agent is not installed'
    }
    $current = [version](Get-Item -LiteralPath $agentExe).VersionInfo.FileVersion
    $arch = 'amd64'
    if (-not [Environment]::Is64BitOperatingSystem) {
        $arch = '386'
    }
    # The regional bucket AWS-UpdateSSMAgent also installs from.
    $url = "https://s3.$script:Region.amazonaws.com/amazon-ssm-$script:Region/latest/windows_$arch/AmazonSSMAgentSetup.exe"
    $setup = Join-Path $env:TEMP "AmazonSSMAgentSetup-$script:RunId.exe"
    Invoke-WebRequest -Uri $url -OutFile $setup -UseBasicParsing
    $signature = Get-AuthenticodeSignature -FilePath $setup
    if ($signature.Status -ne 'Valid' -or $signature.SignerCertificate.Subject -notmatch 'O=Amazon') {
        throw "installer signature is $($signature.Status): $($signature.SignerCertificate.Subject)"
    }
    $available = [version](Get-Item -LiteralPath $setup).VersionInfo.ProductVersion
    if ($available -le $current) {
        Remove-Item -LiteralPath $setup -Force
        $script:PpDetail = "agent $current is current"
        return
    }
    $script:PpDetail = "agent update from $current to $available started"
    $script:PpAfterMarker = {
        Start-Process -FilePath $setup -ArgumentList @('/install', '/quiet', '/norestart') -WindowStyle Hidden
    }.GetNewClosure()
}
