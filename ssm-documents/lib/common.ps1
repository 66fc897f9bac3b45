# patch-pipeline common prelude: lib/documents.ts puts it before every Windows document script.
# Functions only, plus the state the finally block reads; a document script sets the parameter
# variables (Read-PpParametersFromEnv, or its own block), then calls Invoke-PpDocument.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12

$script:RunId = ''
$script:Stage = ''
$script:Bucket = ''
$script:Region = ''
$script:MarkerPrefix = ''
$script:ApplicationTagKey = ''
$script:OwnerTagKey = ''
$script:InstanceId = ''
$script:PpStartedAt = ''
$script:PpDetail = ''
$script:PpWork = ''
$script:PpAfterMarker = $null
$script:PpImdsToken = ''
$script:PpImdsBase = 'http://169.254.169.254'
if ($env:AWS_EC2_METADATA_SERVICE_ENDPOINT) {
    $script:PpImdsBase = $env:AWS_EC2_METADATA_SERVICE_ENDPOINT.TrimEnd('/')
}

function Get-PpNow {
    (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
}

function Write-PpLog {
    param([string]$Message)
    Write-Output ('{0} [{1}] {2}' -f (Get-PpNow), $script:Stage, $Message)
}

# Reads the ENV_VAR-interpolated parameters (SSM_<Name>, set by SSM Agent 3.3.2746.0+).
function Read-PpParametersFromEnv {
    $script:RunId = [string]$env:SSM_RunId
    $script:Stage = [string]$env:SSM_Stage
    $script:Bucket = [string]$env:SSM_Bucket
    $script:Region = [string]$env:SSM_Region
    $script:MarkerPrefix = [string]$env:SSM_MarkerPrefix
    $script:ApplicationTagKey = [string]$env:SSM_ApplicationTagKey
    $script:OwnerTagKey = [string]$env:SSM_OwnerTagKey
}

# Second line of defence behind the documents' allowedPattern: a value is a name, never code.
function Test-PpValue {
    param([string]$Name, [string]$Value, [string]$Pattern)
    if ($Value -cnotmatch $Pattern) {
        throw "parameter $Name is missing or not allowed"
    }
}

function Test-PpPrefix {
    param([string]$Name, [string]$Value)
    Test-PpValue -Name $Name -Value $Value -Pattern '^runs/[A-Za-z0-9_-]{1,80}/([a-z0-9-]{1,64}/){1,4}$'
}

# IMDSv2 GET; '' when metadata is off or the path does not exist.
function Get-PpImds {
    param([string]$Path)
    try {
        if (-not $script:PpImdsToken) {
            $script:PpImdsToken = Invoke-RestMethod -Method Put -Uri "$script:PpImdsBase/latest/api/token" -TimeoutSec 2 -UseBasicParsing `
                -Headers @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '21600' }
        }
        return [string](Invoke-RestMethod -Uri "$script:PpImdsBase$Path" -TimeoutSec 2 -UseBasicParsing `
                -Headers @{ 'X-aws-ec2-metadata-token' = $script:PpImdsToken })
    }
    catch {
        return ''
    }
}

function Get-PpInstanceId {
    if ($env:AWS_SSM_INSTANCE_ID) {
        return $env:AWS_SSM_INSTANCE_ID
    }
    return Get-PpImds -Path '/latest/meta-data/instance-id'
}

# Instance tag through instance metadata tags; '' when the tag or metadata tags are off.
function Get-PpTag {
    param([string]$Key)
    if (-not $Key) {
        return ''
    }
    return Get-PpImds -Path "/latest/meta-data/tags/instance/$Key"
}

function Get-PpDomain {
    try {
        return [string](Get-CimInstance -ClassName Win32_ComputerSystem).Domain
    }
    catch {
        return ''
    }
}

# Every field quoted, quotes doubled, line breaks flattened: one record per line, as on Linux.
function ConvertTo-PpCsvRow {
    param([object[]]$Fields)
    $quoted = foreach ($field in $Fields) {
        $text = ([string]$field) -replace "[`r`n]", ' '
        '"' + $text.Replace('"', '""') + '"'
    }
    return ($quoted -join ',')
}

function Write-PpLines {
    param([string]$Path, [string[]]$Lines)
    $utf8 = New-Object System.Text.UTF8Encoding($false)
    [System.IO.File]::WriteAllText($Path, (($Lines -join "`n") + "`n"), $utf8)
}

function Test-PpAwsTools {
    if (Get-Command -Name Write-S3Object -ErrorAction SilentlyContinue) {
        return $true
    }
    if (Get-Module -ListAvailable -Name AWS.Tools.S3) {
        Import-Module AWS.Tools.S3 -ErrorAction SilentlyContinue
    }
    elseif (Get-Module -ListAvailable -Name AWSPowerShell) {
        Import-Module AWSPowerShell -ErrorAction SilentlyContinue
    }
    return [bool](Get-Command -Name Write-S3Object -ErrorAction SilentlyContinue)
}

function Send-PpS3Object {
    param([string]$Path, [string]$Key)
    if (Test-PpAwsTools) {
        Write-S3Object -BucketName $script:Bucket -Key $Key -File $Path -Region $script:Region | Out-Null
    }
    else {
        & aws.exe s3 cp $Path "s3://$script:Bucket/$Key" --region $script:Region --only-show-errors
        if ($LASTEXITCODE -ne 0) {
            throw "aws s3 cp to s3://$script:Bucket/$Key failed with $LASTEXITCODE"
        }
    }
}

function Receive-PpS3Object {
    param([string]$Key, [string]$Path)
    if (Test-PpAwsTools) {
        Read-S3Object -BucketName $script:Bucket -Key $Key -File $Path -Region $script:Region | Out-Null
    }
    else {
        & aws.exe s3 cp "s3://$script:Bucket/$Key" $Path --region $script:Region --only-show-errors
        if ($LASTEXITCODE -ne 0) {
            throw "aws s3 cp from s3://$script:Bucket/$Key failed with $LASTEXITCODE"
        }
    }
}

# The local start of this run on this instance, kept by the first document of the run.
function Get-PpRunStartedAt {
    $dir = Join-Path $env:ProgramData 'patch-pipeline'
    $file = Join-Path $dir "$script:RunId.started"
    if (-not (Test-Path -LiteralPath $file)) {
        New-Item -ItemType Directory -Force -Path $dir | Out-Null
        Set-Content -LiteralPath $file -Value (Get-PpNow) -Encoding ASCII
    }
    return [datetime]::Parse((Get-Content -LiteralPath $file -TotalCount 1)).ToUniversalTime()
}

function ConvertTo-PpJsonString {
    param([string]$Text)
    $escaped = $Text.Replace('\', '\\').Replace('"', '\"') -replace "[`r`n`t]", ' '
    return '"' + $escaped + '"'
}

function Write-PpMarker {
    param([string]$Status)
    $fields = @(
        '"runId":' + (ConvertTo-PpJsonString $script:RunId)
        '"stage":' + (ConvertTo-PpJsonString $script:Stage)
        '"instanceId":' + (ConvertTo-PpJsonString $script:InstanceId)
        '"status":' + (ConvertTo-PpJsonString $Status)
        '"startedAt":' + (ConvertTo-PpJsonString $script:PpStartedAt)
        '"finishedAt":' + (ConvertTo-PpJsonString (Get-PpNow))
        '"detail":' + (ConvertTo-PpJsonString $script:PpDetail)
    )
    $path = Join-Path $script:PpWork 'marker.json'
    Write-PpLines -Path $path -Lines @('{' + ($fields -join ',') + '}')
    Send-PpS3Object -Path $path -Key "$script:MarkerPrefix$script:InstanceId.json"
    Write-PpLog "marker $Status written ($script:PpDetail)"
}

# Runs the document's work; the marker is written last, in finally, Success only when the work
# returned. $script:PpAfterMarker (a script block) runs after the marker, for work that
# restarts the agent.
function Invoke-PpDocument {
    param([scriptblock]$Work)
    $script:PpStartedAt = Get-PpNow
    $status = 'Failed'
    $canWriteMarker = $false
    $exitCode = 1
    try {
        $script:PpWork = Join-Path ([System.IO.Path]::GetTempPath()) ('patch-pipeline-' + [guid]::NewGuid().ToString('N'))
        New-Item -ItemType Directory -Force -Path $script:PpWork | Out-Null
        $script:InstanceId = Get-PpInstanceId
        Test-PpValue -Name InstanceId -Value $script:InstanceId -Pattern '^m?i-[0-9a-f]{8,32}$'
        Test-PpValue -Name Bucket -Value $script:Bucket -Pattern '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
        Test-PpValue -Name Region -Value $script:Region -Pattern '^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$'
        Test-PpPrefix -Name MarkerPrefix -Value $script:MarkerPrefix
        $canWriteMarker = $true
        Test-PpValue -Name RunId -Value $script:RunId -Pattern '^[A-Za-z0-9_-]{1,80}$'
        Test-PpValue -Name Stage -Value $script:Stage -Pattern '^[a-z0-9-]{1,64}$'
        Test-PpValue -Name ApplicationTagKey -Value $script:ApplicationTagKey -Pattern '^[A-Za-z0-9_.:+=@-]{1,128}$'
        Test-PpValue -Name OwnerTagKey -Value $script:OwnerTagKey -Pattern '^[A-Za-z0-9_.:+=@-]{1,128}$'
        Write-PpLog "run $script:RunId stage $script:Stage on $script:InstanceId"
        $null = Get-PpRunStartedAt
        & $Work
        $status = 'Success'
        $exitCode = 0
    }
    catch {
        if ($script:PpDetail) {
            $script:PpDetail = "$script:PpDetail; $($_.Exception.Message)"
        }
        else {
            $script:PpDetail = $_.Exception.Message
        }
        Write-PpLog "failed: $($_.Exception.Message)"
    }
    finally {
        if ($canWriteMarker) {
            try {
                Write-PpMarker -Status $status
            }
            catch {
                Write-PpLog "could not write the marker: $($_.Exception.Message)"
                $exitCode = 1
            }
        }
        else {
            Write-PpLog "no marker: bucket, prefix or instance id unknown ($script:PpDetail)"
        }
        if ($status -eq 'Success' -and $script:PpAfterMarker) {
            & $script:PpAfterMarker
        }
        if ($script:PpWork -and (Test-Path -LiteralPath $script:PpWork)) {
            Remove-Item -LiteralPath $script:PpWork -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
    exit $exitCode
}

# Windows Update Agent history, newest first (Operation 1 = installation).
function Get-PpUpdateHistory {
    $session = New-Object -ComObject Microsoft.Update.Session
    $searcher = $session.CreateUpdateSearcher()
    $total = $searcher.GetTotalHistoryCount()
    if ($total -le 0) {
        return @()
    }
    return @($searcher.QueryHistory(0, $total) | Where-Object { $_.Operation -eq 1 })
}

function Get-PpKbId {
    param([string]$Title)
    if ($Title -match '(KB\d+)') {
        return $Matches[1]
    }
    return ''
}
